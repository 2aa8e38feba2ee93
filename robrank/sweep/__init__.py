"""Sweeps: a grid of swipes (models x profiles x seeds), each cell resumable, run by a pluggable executor."""
from .cell import CellJob, run_cell
from .executor import Executor, ExecutorSettings, build_executor, parse_options
from .grid import Cell, Grid, SwipeSettings, load_grid
from .runner import SweepOutcome, run_sweep, write_reports
from .state import STATES, CellState, SweepError, format_status, sweep_states

__all__ = ["Cell", "CellJob", "CellState", "Executor", "ExecutorSettings", "Grid", "STATES", "SweepError", "SweepOutcome",
           "SwipeSettings", "build_executor", "format_status", "load_grid", "parse_options", "run_cell", "run_sweep",
           "sweep_states", "write_reports"]
