"""A trained model on data it does not learn from: loss and accuracy in eval mode."""


def evaluate(model, loss_fn, x, t, batch_size=250):
    """(mean loss, accuracy) of the model in eval mode, in batches to bound memory (a CNN's
    activations for 250 images are already about a hundred MB)."""
    if len(x) == 0:
        raise ValueError(f"evaluate: no examples (x has shape {x.shape}); a mean loss and an "
                         "accuracy need at least one")
    total_loss, correct = 0.0, 0
    for first in range(0, len(x), batch_size):
        logits = model.forward(x[first:first + batch_size], train=False)
        total_loss += loss_fn.forward(logits, t[first:first + batch_size]) * len(logits)
        correct += int((logits.argmax(axis=1) == loss_fn.labels).sum())
    return total_loss / len(x), correct / len(x)
