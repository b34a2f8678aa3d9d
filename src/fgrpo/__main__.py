import sys

from fgrpo.cli.main import main

sys.exit(main())
