import sys

from gsmlp.cli import main

sys.exit(main())
