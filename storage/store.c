/* Model store (being written). */
#include "storage/store.h"
