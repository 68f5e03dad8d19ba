"""`python -m gpudoctor` runs the command line."""
import sys

from gpudoctor.cli import main

sys.exit(main())
