"""``python -m django_kameleoon.collector``: run the collector from the command line."""

import sys

from django_kameleoon.collector.cli import main

sys.exit(main())
