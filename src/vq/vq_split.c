/* SPDX-License-Identifier: MIT */
/* placeholder: being implemented */
typedef int vhk_placeholder_t;
