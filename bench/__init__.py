"""Side-by-side benchmarks (``turngym bench <suite>``): each module is a suite exposing
``run(quick: bool = False) -> dict`` and a ``main()`` (``python bench/<suite>.py --json FILE``);
:mod:`turngym.bench.run` names and loads them. Shipped in the wheel as ``turngym.bench``; the
peers some suites compare against come from the ``[bench]`` extra."""
