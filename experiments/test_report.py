#!/usr/bin/env python3
"""Checks of the statistics and table code in report.py against values worked out by hand."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report  # noqa: E402
import run  # noqa: E402


class Stats(unittest.TestCase):
    def test_sign_flip_exact(self):
        # All five differences positive: only the all-plus and all-minus flips are as extreme.
        self.assertAlmostEqual(report.sign_flip_exact([1, 2, 3, 4, 5]), 2 / 32)
        # |sum| = 11 for [1,-2,3,4,5]; flips reaching |sum| >= 11: sums 15, 13, 11 and mirrors.
        self.assertAlmostEqual(report.sign_flip_exact([1, -2, 3, 4, 5]), 6 / 32)
        self.assertAlmostEqual(report.sign_flip_exact([1, -1]), 1.0)

    def test_wilcoxon_exact(self):
        self.assertAlmostEqual(report.wilcoxon([1, 2, 3, 4, 5]), 2 / 32)
        # W+ = 13 of 15: W in {0, 1, 2, 13, 14, 15} is as extreme: 6 of 32 sign vectors.
        self.assertAlmostEqual(report.wilcoxon([1, -2, 3, 4, 5]), 6 / 32)
        self.assertEqual(report.wilcoxon([0, 0]), 1.0)

    def test_wilcoxon_normal_approximation(self):
        # 30 equal positive differences: W+ = 465, mu = 232.5, all tied so var = (n^3-n)/48 off.
        diffs = [0.01 * (i + 1) for i in range(30)]
        p = report.wilcoxon(diffs)
        self.assertLess(p, 1e-5)
        mixed = [(-1) ** i * 0.01 * (i + 1) for i in range(30)]
        self.assertGreater(report.wilcoxon(mixed), 0.5)

    def test_monte_carlo_close_to_exact(self):
        diffs = [0.3, -0.1, 0.2, 0.25, 0.05, -0.02, 0.11, 0.4]
        self.assertAlmostEqual(report.sign_flip_monte_carlo(diffs, draws=20000),
                               report.sign_flip_exact(diffs), delta=0.01)


class Cells(unittest.TestCase):
    def test_cell_ids_and_args(self):
        c = run.make_cell("cv", "crunet_res_lw", "d12", fold=3)
        self.assertEqual(run.cell_id(c), "cv-d12-crunet_res_lw-bce_dice-f3-e40-s1")
        a = run.train_args(c, "/tmp/x")
        self.assertEqual(a[a.index("--fold") + 1], "3")
        self.assertEqual(a.count("--data"), 2)
        s = run.make_cell("seed", "crunet_res_hw", "d1", "bce")
        self.assertEqual(s["epochs"], 20)  # the HW cells are shortened on the CPU, and say so
        self.assertEqual(run.make_cell("seed", "crunet_res_hw", "d1", device="cuda")["epochs"], 220)
        self.assertIn("--protocol", run.train_args(s, "/tmp/x"))
        plan = run.plans()["seed"]
        self.assertEqual(len({run.cell_id(c) for c in plan}), 16)

    def test_seed_table_marks_short_and_missing_cells(self):
        row = {"protocol": "seed", "model": "crunet_res_hw", "data": "d1", "loss": "bce",
               "epochs_run": 20, "test_dice_final": 0.9, "test_dice_final_at_0.3": 0.89,
               "test_dice_best": 0.91, "test_dice_best_at_0.3": 0.9, "device": "cpu",
               "s_per_epoch": 80.0}
        lines, missing = report.seed_section([row])
        self.assertEqual(len(missing), 15)
        text = "\n".join(lines)
        self.assertIn("**20** (of 220)", text)
        self.assertIn("1 of 16 cells", text)

    def test_shipped_section_states_cross_validated_dice(self):
        base = {"model": "crunet_res_lw", "data": "d12", "loss": "bce_dice", "cpu": "X",
                "threads": 2, "commit": "abc", "resumed": False, "finished": "2026-12-01 10:00 UTC",
                "command": "train --model crunet_res_lw"}
        cv = [dict(base, protocol="cv", fold=f, test_dice_final=d,
                   per_image_final=[["dataset1", f"a{f}", d + 0.1], ["dataset2", f"b{f}", d - 0.1]])
              for f, d in ((0, 0.8), (1, 0.9))]
        final = dict(base, protocol="final", train_images=220, epochs_run=40, train_seconds=600.0)
        text = "\n".join(report.shipped_section(cv + [final]))
        self.assertIn("0.8500 ± 0.0707 over 2 of 5 folds", text)
        self.assertIn("dataset1: 0.9500 over 2 images", text)
        self.assertIn("dataset2: 0.7500 over 2 images", text)
        self.assertIn("all 220 shared pairs", text)
        self.assertIn("`train --model crunet_res_lw`", text)
        self.assertEqual(report.shipped_section(cv)[-1], "Not trained yet.")


if __name__ == "__main__":
    unittest.main()
