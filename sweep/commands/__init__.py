"""One module per ``monosweep`` command, each a ``main(args) -> exit code`` run under the one-line error guard."""
