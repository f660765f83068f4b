"""How data/politeness/ was cut from the full politeness set (../shared/data/politeness in the development
checkout): a stratified random sample by (domain, consensus label), seed 0, keeping each row as it was.

    python data/politeness/make_subset.py <full dir> data/politeness
"""

import json
import random
import sys
from collections import defaultdict
from pathlib import Path

SIZES = {"train.jsonl": 3000, "test.jsonl": 1000}


def main(source: Path, target: Path) -> None:
    for name, size in SIZES.items():
        rows = [json.loads(line) for line in (source / name).read_text(encoding="utf-8").splitlines() if line.strip()]
        strata = defaultdict(list)
        for row in rows:
            strata[(row["domain"], row["label"])].append(row)
        rng = random.Random(0)
        chosen = []
        for key in sorted(strata):
            group = strata[key]
            take = round(size * len(group) / len(rows))
            chosen += rng.sample(group, take)
        chosen.sort(key=lambda row: row["id"])
        with (target / name).open("w", encoding="utf-8") as out:
            for row in chosen:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(name, len(chosen))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
