import sys

from facecomic_gui.app import main

sys.exit(main())
