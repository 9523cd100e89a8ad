/* SPDX-License-Identifier: MIT */
/*
 * Postcopy live migration (vhost-user PAGEFAULT): a userfaultfd the
 * frontend resolves. The backend creates it (POSTCOPY_ADVISE) and hands
 * it to the frontend; once the frontend confirmed it knows where we
 * mapped guest memory, every mapped region is registered for missing-page
 * faults, so a page the destination has not received yet stops the
 * thread touching it until the frontend places the page.
 *
 * Nothing here touches guest memory: a page populated before the frontend
 * places it makes that placement fail ("File exists"), so the mappings
 * are never pre-faulted or locked (mem_region_map() maps without
 * MAP_POPULATE and nothing in the library calls mlock).
 *
 * Includes: util, mem.
 */
#ifndef VHK_MEM_MEM_UFFD_H
#define VHK_MEM_MEM_UFFD_H

#include "mem/mem.h"

/*
 * A new userfaultfd (O_CLOEXEC | O_NONBLOCK, API handshake done, no
 * optional feature asked) in *@ret_fd. Returns 0 or -errno (-EPERM
 * without the privilege the kernel asks for, -ENOSYS without the syscall).
 */
int mem_uffd_open(int *ret_fd);

/*
 * Register every region of @t with @ufd for missing-page faults (the
 * pages of each region's mapping that hold it). All or nothing: on
 * failure the ranges registered so far are unregistered. Returns 0 or
 * -errno (-EINVAL: a region the kernel cannot register, e.g. hugetlbfs
 * pages larger than the alignment).
 */
int mem_table_uffd_register(const struct mem_table *t, int ufd);

/* The same for one region (ADD_MEM_REG while postcopy listens). 0 or -errno. */
int mem_region_uffd_register(const struct mem_region *r, int ufd);

/* Undo mem_table_uffd_register() (errors ignored: the ranges may be gone). */
void mem_table_uffd_unregister(const struct mem_table *t, int ufd);

#endif
