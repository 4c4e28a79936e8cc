"""One run: its configuration (:mod:`.config`), its execution into a record (:mod:`.execute`), the
trainer, the instruments that time it and measure its memory, and the machine it ran on."""
