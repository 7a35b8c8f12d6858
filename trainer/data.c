/* Data loading (being written). */
#include "trainer/data.h"
