from components.fast_exit import exit_now
from pipeline.cli import main

exit_now(main())
