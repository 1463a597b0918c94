"""The seed notebook's code, verbatim: the ground truth the library must match.

Copied from ``shared/seed/ffn_numpy_notebook.txt`` (docstrings dropped). One
change: the notebook's ``Layer.sgd_step(self)`` takes no learning rate, yet its
``Sequential.sgd_step`` passes one; here it takes ``lrate`` so the notebook runs.
"""

import numpy as np


class Layer:
    def sgd_step(self, lrate):
        pass


class Linear(Layer):
    def __init__(self, m, n):
        self.m, self.n = m, n

        self.W0 = np.zeros((n, 1))
        self.W = np.random.normal(0, np.sqrt(1 / m), (m, n))

    def forward(self, A):
        self.A = A

        return self.W.T @ self.A + self.W0

    def backward(self, dLdZ):
        self.dLdW = self.A @ dLdZ.T  # Implicit sum over all b
        self.dLdW0 = np.sum(dLdZ, axis=1, keepdims=True)

        return self.W @ dLdZ

    def sgd_step(self, lrate):
        self.W = self.W - lrate * self.dLdW
        self.W0 = self.W0 - lrate * self.dLdW0


class Tanh(Layer):
    def forward(self, Z):
        self.A = np.tanh(Z)

        return self.A

    def backward(self, dLdA):
        return (1 - self.A**2) * dLdA


class ReLU(Layer):
    def forward(self, Z):
        self.A = np.maximum(0, Z)

        return self.A

    def backward(self, dLdA):
        return dLdA * (self.A != 0)


class SoftMax(Layer):
    def forward(self, Z):
        self.A = np.exp(Z) / np.sum(np.exp(Z), axis=0, keepdims=True)

        return self.A

    def backward(self, dLdA):
        n, _ = dLdA.shape

        dAdZ = np.einsum("jk,jk,ji->ijk", self.A, 1 - self.A, np.eye(n)) + np.einsum(
            "jk,ik,ji->ijk", -self.A, self.A, 1 - np.eye(n)
        )

        return np.einsum("ikj,kj->ij", dAdZ, dLdA)

    def class_fun(self, Ypred):
        return np.argmax(Ypred, axis=0)


class NLL(Layer):
    def forward(self, Ypred, Y):
        self.Ypred = Ypred
        self.Y = Y

        return -np.sum(self.Y * np.log(self.Ypred))

    def backward(self):
        return -self.Y / self.Ypred


class Sequential:
    def __init__(self, modules, loss):
        self.modules = modules
        self.loss = loss

    def sgd(self, X, Y, iters=100, lrate=0.005):
        d, n = X.shape

        for it in range(iters):
            t = np.random.randint(n)

            Xt = X[:, t : t + 1]
            Yt = Y[:, t : t + 1]

            loss = self.loss.forward(self.forward(Xt), Yt)
            self.backward(self.loss.backward())

            self.print_accuracy(it, X, Y, loss)

            self.sgd_step(lrate)

    def forward(self, Xt):
        for m in self.modules:
            Xt = m.forward(Xt)

        return Xt

    def backward(self, dLdA):
        for m in self.modules[::-1]:
            dLdA = m.backward(dLdA)

    def sgd_step(self, lrate):
        for m in self.modules:
            m.sgd_step(lrate)

    def print_accuracy(self, it, X, Y, cur_loss, every=250):
        if it % every == 1:
            cf = self.modules[-1].class_fun
            acc = np.mean(cf(self.forward(X)) == cf(Y))

            print("Iteration =", it, "\tAcc =", acc, "\tLoss =", cur_loss, flush=True)
