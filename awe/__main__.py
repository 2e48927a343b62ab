import sys

from awe.cli import main

sys.exit(main())
