import sys

from explorer.bench.engine import main

sys.exit(main())
