"""Development tooling, imported by no product module: the benchmark gate (:mod:`.gate`, on
:mod:`.abrun`) and the GPU check (:mod:`.gpu_check`)."""
