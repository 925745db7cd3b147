"""Whether an attribution map can be trusted: what notebooks 06 and 07 use, in three jobs.

* ``references``: the maps a method must beat (random, constant, the photo's edges);
* ``metrics``: how maps are compared and scored (on a common grid, deletion and insertion);
* ``rule``: when one map beats another, item by item, and how often that rule errs.

``Table`` and ``rule_table`` show the scores as an HTML table.
"""
from .metrics import (GRID, auc, cell_curves, cell_order, randomization_stages, region_share,
                      reinitialize, spearman, ssim, to_grid, top_cells, top_iou)
from .references import REFERENCES, constant_map, edge_map, random_map, reference_maps
from .rule import (MIN_ITEMS, Score, beats, beats_all, false_alarm_rate, improvement,
                   verdicts)
from .table import Table, rule_table
from .sanity import RandomizationCheck, edge_method, random_method, randomization_check

__all__ = ["GRID", "auc", "cell_curves", "cell_order", "randomization_stages", "region_share",
           "reinitialize", "spearman", "ssim", "to_grid", "top_cells", "top_iou", "REFERENCES",
           "constant_map", "edge_map", "random_map", "reference_maps", "MIN_ITEMS", "Score",
           "beats", "beats_all", "false_alarm_rate", "improvement", "verdicts", "Table",
           "rule_table"]
# Notebook 07's model whose right answer is known
from .known import BOX_A, BOX_B, TwoBoxes, answer_share, box_mask, right_share, split_error

__all__ += ["BOX_A", "BOX_B", "TwoBoxes", "answer_share", "box_mask", "right_share",
            "split_error"]
__all__ += ["RandomizationCheck", "edge_method", "random_method", "randomization_check"]
