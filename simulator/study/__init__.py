"""The simulation-study machine: design grid, runner, results store, performance measures."""
