import sys

from marlkit.cli import main

sys.exit(main())
