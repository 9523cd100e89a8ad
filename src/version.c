/* SPDX-License-Identifier: MIT */
#include "vhostkit/vhostkit.h"
#include "util/compiler.h"

#define STR_(x) #x
#define STR(x) STR_(x)

VHK_EXPORT const char *vhk_version(void)
{
	return STR(VHK_VERSION_MAJOR) "." STR(VHK_VERSION_MINOR) "." STR(VHK_VERSION_PATCH);
}
