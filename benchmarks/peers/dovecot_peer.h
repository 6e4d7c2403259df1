/* A thin C interface to libdovecot's own seq_range_array (and to a Dovecot-style
 * {real_uid, virtual_uid} array), for the benchmarks in bench_seq_range_set.cpp and
 * bench_uid_map.cpp. Dovecot's headers are C only (typeof, implicit void* conversions),
 * so they are included by dovecot_peer.c alone. Every loop that a benchmark times runs
 * inside dovecot_peer.c, as C code written against Dovecot's exported API would, so
 * the C++ side adds no call per element. No Dovecot source is copied: only the library
 * functions and the macros of its installed headers are used. */
#ifndef VFOLDER_BENCH_DOVECOT_PEER_H
#define VFOLDER_BENCH_DOVECOT_PEER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One closed range; layout-compatible with Dovecot's struct seq_range. */
typedef struct dvc_range {
    uint32_t first, last;
} dvc_range;

/* Calls lib_init() once. */
void dvc_init(void);

/* ---- ARRAY_TYPE(seq_range) ---- */
typedef struct dvc_srs dvc_srs;

dvc_srs *dvc_srs_new(void);
void dvc_srs_free(dvc_srs *s);
/* A new set holding the given sorted, disjoint ranges (appended with _add_range). */
dvc_srs *dvc_srs_from_ranges(const dvc_range *r, size_t n);
/* A copy (array_append_array into a new array). */
dvc_srs *dvc_srs_copy(const dvc_srs *s);
/* The ranges as stored. */
const dvc_range *dvc_srs_ranges(const dvc_srs *s, size_t *n_r);
unsigned int dvc_srs_count(const dvc_srs *s); /* seq_range_count() */

/* seq_range_array_add(v[i]) for each i. */
void dvc_srs_add_each(dvc_srs *s, const uint32_t *v, size_t n);
void dvc_srs_add_range(dvc_srs *s, uint32_t a, uint32_t b);
/* seq_range_array_remove(v[i]) for each i; returns how many were present. */
size_t dvc_srs_remove_each(dvc_srs *s, const uint32_t *v, size_t n);
unsigned int dvc_srs_remove_set(dvc_srs *s, const dvc_srs *src); /* _remove_seq_range */
void dvc_srs_merge(dvc_srs *s, const dvc_srs *src);                /* _merge */
void dvc_srs_invert(dvc_srs *s, uint32_t lo, uint32_t hi);         /* _invert */
/* seq_range_exists(q[i]) for each i; returns the number of hits. */
size_t dvc_srs_exists_each(const dvc_srs *s, const uint32_t *q, size_t n);
/* Visits every value in order (array_foreach over the ranges) folding
 * h = rotl(h, 5) ^ v, starting from h = 0; the same fold as the C++ peers. */
uint64_t dvc_srs_fold_values(const dvc_srs *s);
/* Visits every value with seq_range_array_iter_nth(0, 1, 2, ...), same fold. */
uint64_t dvc_srs_fold_values_iter_nth(const dvc_srs *s);

/* ---- a Dovecot-style uid map: ARRAY of {real_uid, virtual_uid} sorted by real_uid,
 * searched with bsearch_insert_pos() and grown with array_insert(), one message at a
 * time (as the virtual storage plugin keeps its backend UID maps). ---- */
typedef struct dvc_uid_entry {
    uint32_t real_uid, virtual_uid;
} dvc_uid_entry;
typedef struct dvc_uidmap dvc_uidmap;

dvc_uidmap *dvc_uidmap_new(void);
void dvc_uidmap_free(dvc_uidmap *m);
dvc_uidmap *dvc_uidmap_copy(const dvc_uidmap *m);
const dvc_uid_entry *dvc_uidmap_entries(const dvc_uidmap *m, size_t *n_r);
/* For each UID of `uids` (ascending): bsearch_insert_pos + array_insert of
 * {uid, vuid = 0} unless present. Returns how many were inserted. */
size_t dvc_uidmap_insert_set(dvc_uidmap *m, const dvc_srs *uids);
/* Appends entries known to be sorted and above the last one (setup only). */
void dvc_uidmap_append_sorted(dvc_uidmap *m, const dvc_uid_entry *e, size_t n);
/* For each UID of `uids`: bsearch_insert_pos, and if found seq_range_array_add of its
 * virtual UID to `dropped` and array_delete. Returns how many were erased. */
size_t dvc_uidmap_erase_set(dvc_uidmap *m, const dvc_srs *uids, dvc_srs *dropped);
/* For each UID of `uids`: bsearch_insert_pos, and if found seq_range_array_add of its
 * virtual UID to `out`. Returns how many were found. */
size_t dvc_uidmap_translate(const dvc_uidmap *m, const dvc_srs *uids, dvc_srs *out);
/* bsearch_insert_pos for each q[i]; returns the sum of the virtual UIDs found. */
uint64_t dvc_uidmap_lookup_each(const dvc_uidmap *m, const uint32_t *q, size_t n);

#ifdef __cplusplus
}
#endif

#endif
