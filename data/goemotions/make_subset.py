"""How data/goemotions/ was cut from the full GoEmotions files (../shared/data/goemotions in the development
checkout): a random sample of rows, seed 0, each row kept as it was, in source order.

    python data/goemotions/make_subset.py <full dir> data/goemotions
"""

import json
import random
import sys
from pathlib import Path

SIZES = {"train.jsonl": 3000, "test.jsonl": 1000}


def main(source: Path, target: Path) -> None:
    for name, size in SIZES.items():
        rows = [line for line in (source / name).read_text(encoding="utf-8").splitlines() if line.strip()]
        chosen = sorted(random.Random(0).sample(range(len(rows)), size))
        with (target / name).open("w", encoding="utf-8") as out:
            for position in chosen:
                out.write(json.dumps(json.loads(rows[position]), ensure_ascii=False) + "\n")
        print(name, len(chosen))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
