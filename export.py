"""Export a trained VPN as a SavedModel for TF Serving:
`python export.py --workdir DIR --export_dir BASE/NAME/VERSION [--xla]`.

The command lives in vpn_tf/commands/export.py (`vpn-export` once installed);
`python export.py --help` lists its flags.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # this checkout's vpn_tf and datasets/

from vpn_tf.commands.export import main  # noqa: E402

if __name__ == "__main__":
    main()
