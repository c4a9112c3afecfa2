import sys

from taxdome_qbo.cli import main

sys.exit(main())
