"""What the tests share besides fixtures: tiny configs and failure-injecting methods (``configs``), real
servers on 127.0.0.1 (``servers``), sweeps through the real command line (``sweeps``), and the released PIL
recipe the generator is held to (``pil_recipe``)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
