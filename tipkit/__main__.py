import sys

from tipkit.cli import main

sys.exit(main())
