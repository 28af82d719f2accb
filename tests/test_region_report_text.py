"""The region report's plain sentences: a loss or a tie is said, and a loss is never printed as a tie."""
from genomenet.downstream.regions import MODEL_ROW, losses


def test_a_loss_smaller_than_the_printed_digits_still_reads_as_a_loss() -> None:
    rows = {MODEL_ROW: {"accuracy": 0.36631, "mcc": 0.25298}, "probe": {"accuracy": 0.37166, "mcc": 0.25313}}
    said = losses(rows)
    assert said == ["the fine-tuned model LOSES to the probe on accuracy (0.366 vs 0.372)",
                    "the fine-tuned model LOSES to the probe on mcc (0.2530 vs 0.2531)"]


def test_an_exact_tie_is_said_as_a_tie_not_a_win() -> None:
    rows = {MODEL_ROW: {"accuracy": 0.5, "mcc": 0.3}, "k-mer": {"accuracy": 0.5, "mcc": 0.1}}
    assert losses(rows) == ["the fine-tuned model TIES with the k-mer on accuracy (0.500 vs 0.500)"]


def test_a_model_ahead_everywhere_says_so() -> None:
    rows = {MODEL_ROW: {"accuracy": 0.9, "mcc": 0.8}, "k-mer": {"accuracy": 0.5, "mcc": 0.1}}
    assert losses(rows) == ["the fine-tuned model beats every baseline on accuracy and MCC"]
