/* scope_sid: scope_pgid's program with a second group, checkpointed with --sid. */
#define WITH_OTHER_GROUP
#include "scope_pgid.c"
