"""Case report forms beside the treatment and safety ones: concomitant medications, medical
history, protocol deviations, pregnancy tests and childbearing potential."""
