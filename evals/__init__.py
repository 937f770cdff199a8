"""The benchmarks: IFEval (posttrain.checkers are its checkers), MT-Bench-lite, pairwise judges,
perplexity and preference metrics, the judged evaluation of registry models, its report, and the
over-optimisation study."""
