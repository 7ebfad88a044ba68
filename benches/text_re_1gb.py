"""Text pass at 1e6 texts (about 1.06 GB) against the tuned per-string ``re``
peer, which the asv suite leaves out at this size (about 40 s a sample).

Times the same calls as ``bench_text`` on the same cached input, ours five
times (median) and the peer once, in one process:

    cd benches && python text_re_1gb.py
"""

from __future__ import annotations

import time

from benchmarks._peers import python_re_frame
from benchmarks.bench_text import TextFeatures, read_table

N_TEXTS = 1_000_000


def main() -> None:
    texts = read_table(N_TEXTS).column("text").to_pylist()
    ours = TextFeatures()
    ours.setup(N_TEXTS)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        ours.time_ours(N_TEXTS)
        times.append(time.perf_counter() - start)
    times.sort()
    start = time.perf_counter()
    python_re_frame(texts)
    peer = time.perf_counter() - start
    print(
        f"{N_TEXTS} texts: ours {times[2]:.3f} s (median of 5), tuned re peer "
        f"{peer:.1f} s: ours faster by {peer / times[2]:.1f}x"
    )


if __name__ == "__main__":
    main()
