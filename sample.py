"""Sample continuations: `python sample.py --workdir DIR [--workdir DIR2 ...] [--split test] [--num_samples 3]`.

The command lives in vpn_tf/commands/sample.py (`vpn-sample` once installed);
`python sample.py --help` lists its flags.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this checkout's vpn_tf and datasets/

from vpn_tf.commands.sample import main  # noqa: E402

if __name__ == "__main__":
    main()
