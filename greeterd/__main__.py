"""``python -m greeterd`` runs the daemon, as the ``greeterd`` command does."""

import sys

from greeterd.daemon import main

sys.exit(main())
