"""Driver progress bar fed from a board (the Ray actor is a plain object here)."""
import io

from ray_train.progress import DriverProgress, ProgressBoard, resolve_mode


def test_bar_shows_step_loss_speed_and_epoch_summaries():
    board, out = ProgressBoard(), io.StringIO()
    bar = DriverProgress(board, total_steps=100, file=out)
    board.put_step({"epoch": 0, "step": 20, "loss": 6.5, "seq_per_s": 812.0, "lr": 1e-3})
    bar.poll()
    board.put_validation({"step": 30, "epoch": 1.5, "train_loss": 6.4, "metric": "ndcg@10", "valid": 0.0512,
                          "best": 0.0512, "best_step": 30, "seq_per_s": 800.0})
    board.put_step({"epoch": 1, "step": 40, "loss": 6.1, "seq_per_s": 820.0, "lr": 1e-3})
    bar.poll()
    bar.close()
    text = out.getvalue()
    assert "40/100" in text and "loss=6.1000" in text and "seq_s=820" in text and "epoch 1" in text
    # each epoch summary is written once, above the bar
    assert text.count("[interest] step 30 (epoch 1.50) validation: loss 6.4000 valid ndcg@10 0.0512") == 1


def test_auto_mode_draws_a_bar_only_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert resolve_mode("auto", io.StringIO()) == "lines"
    assert resolve_mode("auto", Tty()) == "bar"
    assert resolve_mode("bar", io.StringIO()) == "bar"
