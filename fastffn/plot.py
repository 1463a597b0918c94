"""Pictures of a trained model: decision regions and training curves (needs matplotlib).

Install the optional extra with ``pip install 'fastffn[plot]'``. Each function
draws on a matplotlib Axes it is given, or on a new figure, and returns the Axes;
``save_report`` puts both pictures side by side in one PNG, ``sweep_report``
those of a ``fastffn.sweep``.
"""

import numpy as np


def pyplot():
    """Returns matplotlib.pyplot and ListedColormap, or raises a clear ImportError."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.colors import ListedColormap
    except ImportError:
        raise ImportError(
            "plotting needs matplotlib, an optional extra: pip install 'fastffn[plot]'"
        ) from None
    return plt, ListedColormap


def decision_regions(model, X, Y, ax=None, resolution=200):
    """Colours the plane by the class the model predicts, with the points on top.

    As the course's ``classify()`` drew them.

    Args:
        model (Sequential): A trained model of 2 inputs.
        X (ndarray): The 2 by n points.
        Y (ndarray): Their one-hot classes, k by n.
        ax (Axes): Where to draw; a new figure's when None.
        resolution (int): Grid points along each axis.

    Returns:
        Axes: The axes drawn on.

    """
    plt, ListedColormap = pyplot()
    X, Y = model.check_data(X, Y)
    if X.shape[0] != 2:
        raise ValueError(f"X must have 2 rows to draw decision regions, got shape {X.shape}")
    ax = ax or plt.figure(figsize=(5, 5)).gca()
    low, high = X.min(axis=1), X.max(axis=1)
    margin = 0.1 * (high - low) + 1e-9
    xs = np.linspace(low[0] - margin[0], high[0] + margin[0], resolution)
    ys = np.linspace(low[1] - margin[1], high[1] + margin[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.vstack([gx.ravel(), gy.ravel()])
    cf = model.modules[-1].class_fun
    regions = cf(model.forward(grid)).reshape(gx.shape)
    classes = Y.shape[0]
    colors = ListedColormap(plt.get_cmap("tab20").colors[: 2 * classes : 2])  # a hue per class
    levels = np.arange(classes + 1) - 0.5
    ax.contourf(gx, gy, regions, levels=levels, cmap=colors, alpha=0.35)
    ax.scatter(X[0], X[1], c=cf(Y), cmap=colors, vmin=levels[0], vmax=levels[-1], edgecolors="k")
    ax.set(xlabel="x1", ylabel="x2", title="decision regions")
    return ax


def training_curve(history, ax=None):
    """Plots loss and accuracy against the iteration, from ``Sequential.sgd``'s history.

    Args:
        history (list): ``(iteration, loss, accuracy)`` tuples.
        ax (Axes): Where to draw the loss; accuracy goes on a twin axis.

    Returns:
        Axes: The loss axes.

    """
    plt, _ = pyplot()
    if not history:
        raise ValueError("history is empty: train with reports on to record one")
    it, loss, acc = np.array(history, dtype=np.float64).T
    ax = ax or plt.figure(figsize=(6, 4)).gca()
    ax.plot(it, loss, color="tab:red", label="loss (one batch)", marker="o", markevery=[-1], ms=3)
    ax.set(xlabel="iteration", ylabel="loss", title="training")
    ax.legend(loc="center left")
    if np.isfinite(acc).any():  # records whose accuracy was measured (sgd's accuracy=)
        twin = ax.twinx()
        twin.plot(it, acc, color="tab:blue", label="training accuracy", marker="o",
                  markevery=[-1], ms=3)  # fmt: skip
        twin.set(ylabel="accuracy", ylim=(0, 1.05))
        twin.legend(loc="center right")
    return ax


def save_report(model, X, Y, history, path):
    """Saves decision regions (for 2-D data) and the training curve in one PNG.

    Args:
        model (Sequential): The trained model.
        X (ndarray): The d by n training points.
        Y (ndarray): Their one-hot classes.
        history (list): ``(iteration, loss, accuracy)`` tuples from ``sgd``.
        path (str or PathLike): The PNG to write.

    """
    plt, _ = pyplot()
    two_d = np.shape(X)[0] == 2
    fig, axes = plt.subplots(1, 1 + two_d, figsize=(6 + 5 * two_d, 4.5), squeeze=False)
    if two_d:
        decision_regions(model, X, Y, ax=axes[0, 0])
    training_curve(history, ax=axes[0, -1])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sweep_report(result, path):
    """Saves ``sweep_figure(result)`` as a PNG at ``path``."""
    plt, _ = pyplot()
    fig = sweep_figure(result)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def sweep_figure(result):
    """A sweep's loss curves and its final accuracy against the learning rate, in one figure.

    Left: each model's recorded loss against the iteration, coloured by its
    learning rate, its last record marked (a run with one record is a point).
    Right: the final training accuracy against the learning rate (log scale), the
    mean over the other axes (seeds, batch sizes) with their spread from lowest
    to highest.

    Args:
        result (SweepResult): What ``fastffn.sweep`` returned.

    Returns:
        Figure: The two panels.

    """
    plt, _ = pyplot()
    if not any(result.histories):
        raise ValueError("the sweep recorded no history: run it with every set")
    lrates = sorted({c["lrate"] for c in result.configs})
    colors = plt.get_cmap("viridis")(np.linspace(0, 1, len(lrates)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for config, history in zip(result.configs, result.histories, strict=True):
        if history:
            it, loss, _ = np.array(history, dtype=np.float64).T
            left.plot(it, loss, color=colors[lrates.index(config["lrate"])], alpha=0.6, lw=1,
                      marker="o", markevery=[-1], ms=3)  # fmt: skip
    left.set(xlabel="iteration", ylabel="loss (one batch)", yscale="log", title="loss curves")
    for lrate, color in zip(lrates, colors, strict=True):
        left.plot([], [], color=color, label=f"lrate {lrate:.3g}")
    left.legend(fontsize="small")
    accuracy = [
        [a for c, a in zip(result.configs, result.accuracies, strict=True) if c["lrate"] == lr]
        for lr in lrates
    ]
    mean = [np.nanmean(a) if not np.isnan(a).all() else np.nan for a in accuracy]
    low = [np.nanmin(a) if not np.isnan(a).all() else np.nan for a in accuracy]
    high = [np.nanmax(a) if not np.isnan(a).all() else np.nan for a in accuracy]
    right.fill_between(lrates, low, high, color="tab:blue", alpha=0.25, label="lowest to highest")
    right.plot(lrates, mean, "o-", color="tab:blue", label="mean")
    right.set(xscale="log", xlabel="learning rate", ylabel="final training accuracy",
              ylim=(0, 1.05), title="accuracy against learning rate")  # fmt: skip
    right.legend(loc="lower left")
    fig.tight_layout()
    return fig
