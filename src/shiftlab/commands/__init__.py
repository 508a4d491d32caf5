"""The commands beside ``shiftlab run``: ``shiftlab audit`` (:mod:`.audit`) and ``shiftlab
membership`` (:mod:`.membership`). Each reads its config file, runs a method family on a
language model and writes its files and a small report."""
