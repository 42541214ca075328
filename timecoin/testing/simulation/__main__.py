"""
C{python -m timecoin.testing.simulation}: see L{cli}.
"""

import sys

from timecoin.testing.simulation.cli import main

sys.exit(main())
