"""A trained model on data it does not learn from: loss and accuracy in eval mode."""


def evaluate(model, loss_fn, x, t, batch_size=250):
    """(mean loss, accuracy) of the model in eval mode, in batches to bound memory (a CNN's
    activations for 250 images are already about a hundred MB). The accuracy is None when the
    loss counts no correct examples (targets without classes: a regression)."""
    if len(x) == 0:
        raise ValueError(f"evaluate: no examples (x has shape {x.shape}); a mean loss and an "
                         "accuracy need at least one")
    total_loss, correct = 0.0, 0
    for first in range(0, len(x), batch_size):
        y = model.forward(x[first:first + batch_size], train=False)
        total_loss += loss_fn.forward(y, t[first:first + batch_size]) * len(y)
        correct = tally(correct, loss_fn.correct())
    return total_loss / len(x), None if correct is None else correct / len(x)


def tally(total, correct):
    """total + correct, or None once either is None (a loss that counts nothing)."""
    return None if total is None or correct is None else total + correct


def scores(split, loss, accuracy):
    """{"<split>_loss": loss, "<split>_acc": accuracy} for an epoch's record, without the
    accuracy when the loss gives none."""
    return {f"{split}_loss": loss, **({f"{split}_acc": accuracy} if accuracy is not None else {})}
