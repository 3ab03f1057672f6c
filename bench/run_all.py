"""`make bench`: runs every benchmark under bench/ and prints their figures."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHES = [["accuracy.py", "--rates", "5,20", "--duration", "20"]]

for args in BENCHES:
    print(f"== {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], check=True)
