"""Allow ``python -m sshtrail``."""

import sys

from sshtrail.cli.main import main

sys.exit(main())
