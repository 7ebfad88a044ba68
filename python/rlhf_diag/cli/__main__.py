import sys

from rlhf_diag.cli import main

sys.exit(main())
