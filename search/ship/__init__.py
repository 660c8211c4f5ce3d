"""Pick-and-ship over a sweep's results: the ensemble of its trials, the accuracy/cost front,
and the commands (`search ensemble`, `pareto`, `refit`) that write what a user ships."""
