"""Train a Video Pixel Network: `python train.py [--config PRESET] [--workdir DIR] [--steps N] [--FIELD VALUE ...]`.

The command lives in vpn_tf/commands/train.py (`vpn-train` once installed);
`python train.py --help` lists its flags.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this checkout's vpn_tf and datasets/

from vpn_tf.commands.train import main, parse  # noqa: E402, F401

if __name__ == "__main__":
    main()
