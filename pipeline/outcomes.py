"""What a run ended in: its outcome, the exit code that tells a scheduler,
and the words the console and the report use for it (one definition)."""

# Exit codes of `run`, one per outcome, so a scheduler can tell them apart.
EXIT_PUSHED = 0  # a new model was trained, blessed and pushed
EXIT_FAILED = 1  # something broke; the serving model is untouched
EXIT_USAGE = 2  # a bad command line, config or user module: nothing ran
EXIT_NOT_PUSHED = 3  # a new model was trained but not pushed (not blessed, or refused)
EXIT_NOTHING_NEW = 4  # no new data or code: nothing was trained
EXIT_DATA_REFUSED = 5  # the data was refused (malformed, invalid, drifted): nothing was trained
# Another run holds the output root or serving directory: try again later
# (sysexits' EX_TEMPFAIL, which schedulers know as "retry").
EXIT_LOCKED = 75
EXIT_CODES_HELP = f"""exit codes of `run`:
  {EXIT_PUSHED}   a new model was trained, blessed and pushed
  {EXIT_NOT_PUSHED}   a new model was trained but not pushed (the serving model is unchanged)
  {EXIT_NOTHING_NEW}   nothing new (no new span, code or config): nothing was trained
  {EXIT_DATA_REFUSED}   the data was refused (malformed, invalid, drifted): nothing was trained
  {EXIT_FAILED}   the run failed (the serving model is unchanged)
  {EXIT_USAGE}   a bad command line, config or user module: nothing ran
  {EXIT_LOCKED}  another run holds the output root or serving directory"""
OUTCOMES = {
  'pushed': EXIT_PUSHED,
  'not_pushed': EXIT_NOT_PUSHED,
  'nothing_new': EXIT_NOTHING_NEW,
  'data_refused': EXIT_DATA_REFUSED,
  'failed': EXIT_FAILED,
}
OUTCOME_TEXT = {
  'pushed': 'a new model is serving',
  'not_pushed': 'trained, not pushed; the serving model is unchanged',
  'nothing_new': 'no new data or code: nothing to train',
  'data_refused': 'the data was refused: nothing trained, the serving model is unchanged',
  'failed': 'the serving model is unchanged',
}
# What to do after each outcome that is not a push.
NEXT_STEP = {
  'not_pushed': "the report's Decision section says why; `run --replace-serving REASON` "
  'pushes a model worse than the serving one on purpose',
  'nothing_new': 'new data in data_root, or a change to the code or config, trains again',
  'data_refused': 'fix the data named above; if the world really changed, '
  '`run --accept-drift` (drift) or edit the schema on purpose (`make schema`)',
  'failed': 'the line above names the component and the cause, the log has everything; '
  'a plain rerun reuses what finished',
}
