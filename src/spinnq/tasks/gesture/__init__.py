"""DVS gestures (issue 6): the seed paper's conv SNN on DVS128 Gesture or a synthetic stand-in,
P-SNN -> PTQ and Q-SNN (QAT) -> the emulated SpiNNaker2, with accuracy, energy and memory.

    spinnq run gesture                    # synthetic recordings, no download, no tonic
    spinnq run gesture --data-dir DIR     # DVS128 Gesture as tonic lays it out (spinnq[dvs])

Modules: synthetic (events), transforms (events -> frames), data (loader, cache), model,
train (float and QAT), config, runner (the stages: float, PTQ, QAT, chip accuracy and cost).
"""
