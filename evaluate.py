"""Evaluate a checkpoint: `python evaluate.py --workdir DIR [--split test] [--num_sequences N]`.

The command lives in vpn_tf/commands/evaluate.py (`vpn-evaluate` once installed);
`python evaluate.py --help` lists its flags.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this checkout's vpn_tf and datasets/

from vpn_tf.commands.evaluate import main  # noqa: E402

if __name__ == "__main__":
    main()
