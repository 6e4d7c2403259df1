/* See dovecot_peer.h. Compiled as C with -DHAVE_CONFIG_H against /usr/include/dovecot
 * and linked with libdovecot.so; only Dovecot's exported API and header macros are used. */
#include "lib.h"
#include "array.h"
#include "bsearch-insert-pos.h"
#include "seq-range-array.h"

#include "dovecot_peer.h"

#include <stdlib.h>

/* Compile-time check that our mirror struct matches Dovecot's. */
typedef char dvc_range_layout_check[sizeof(struct seq_range) == sizeof(dvc_range) ? 1 : -1];

struct dvc_srs {
    ARRAY_TYPE(seq_range) arr;
};

struct dvc_uidmap {
    ARRAY(struct dvc_uid_entry) arr;
};

void dvc_init(void)
{
    static int done = 0;
    if (!done) {
        lib_init();
        done = 1;
    }
}

static inline uint64_t fold(uint64_t h, uint32_t v)
{
    return ((h << 5) | (h >> 59)) ^ v;
}

/* ---------------------------------------------------------------- seq_range */

dvc_srs *dvc_srs_new(void)
{
    dvc_srs *s = i_new(dvc_srs, 1);
    i_array_init(&s->arr, 16);
    return s;
}

void dvc_srs_free(dvc_srs *s)
{
    if (s == NULL)
        return;
    array_free(&s->arr);
    i_free(s);
}

dvc_srs *dvc_srs_from_ranges(const dvc_range *r, size_t n)
{
    dvc_srs *s = dvc_srs_new();
    for (size_t i = 0; i < n; i++)
        seq_range_array_add_range(&s->arr, r[i].first, r[i].last);
    return s;
}

dvc_srs *dvc_srs_copy(const dvc_srs *src)
{
    dvc_srs *s = i_new(dvc_srs, 1);
    i_array_init(&s->arr, array_count(&src->arr) + 1);
    array_append_array(&s->arr, &src->arr);
    return s;
}

const dvc_range *dvc_srs_ranges(const dvc_srs *s, size_t *n_r)
{
    unsigned int n;
    const struct seq_range *r = array_get(&s->arr, &n);
    *n_r = n;
    return (const dvc_range *)(const void *)r;
}

unsigned int dvc_srs_count(const dvc_srs *s)
{
    return seq_range_count(&s->arr);
}

void dvc_srs_add_each(dvc_srs *s, const uint32_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        seq_range_array_add(&s->arr, v[i]);
}

void dvc_srs_add_range(dvc_srs *s, uint32_t a, uint32_t b)
{
    seq_range_array_add_range(&s->arr, a, b);
}

size_t dvc_srs_remove_each(dvc_srs *s, const uint32_t *v, size_t n)
{
    size_t removed = 0;
    for (size_t i = 0; i < n; i++)
        removed += seq_range_array_remove(&s->arr, v[i]) ? 1 : 0;
    return removed;
}

unsigned int dvc_srs_remove_set(dvc_srs *s, const dvc_srs *src)
{
    return seq_range_array_remove_seq_range(&s->arr, &src->arr);
}

void dvc_srs_merge(dvc_srs *s, const dvc_srs *src)
{
    seq_range_array_merge(&s->arr, &src->arr);
}

void dvc_srs_invert(dvc_srs *s, uint32_t lo, uint32_t hi)
{
    seq_range_array_invert(&s->arr, lo, hi);
}

size_t dvc_srs_exists_each(const dvc_srs *s, const uint32_t *q, size_t n)
{
    size_t hits = 0;
    for (size_t i = 0; i < n; i++)
        hits += seq_range_exists(&s->arr, q[i]) ? 1 : 0;
    return hits;
}

uint64_t dvc_srs_fold_values(const dvc_srs *s)
{
    const struct seq_range *r;
    uint64_t h = 0;
    array_foreach(&s->arr, r) {
        for (uint32_t v = r->seq1;; v++) {
            h = fold(h, v);
            if (v == r->seq2)
                break;
        }
    }
    return h;
}

uint64_t dvc_srs_fold_values_iter_nth(const dvc_srs *s)
{
    struct seq_range_iter iter;
    uint32_t v;
    uint64_t h = 0;
    seq_range_array_iter_init(&iter, &s->arr);
    for (unsigned int n = 0; seq_range_array_iter_nth(&iter, n, &v); n++)
        h = fold(h, v);
    return h;
}

/* ---------------------------------------------------------------- uid map */

static int entry_cmp(const uint32_t *key, const struct dvc_uid_entry *e)
{
    return *key < e->real_uid ? -1 : (*key > e->real_uid ? 1 : 0);
}

dvc_uidmap *dvc_uidmap_new(void)
{
    dvc_uidmap *m = i_new(dvc_uidmap, 1);
    i_array_init(&m->arr, 16);
    return m;
}

void dvc_uidmap_free(dvc_uidmap *m)
{
    if (m == NULL)
        return;
    array_free(&m->arr);
    i_free(m);
}

dvc_uidmap *dvc_uidmap_copy(const dvc_uidmap *src)
{
    dvc_uidmap *m = i_new(dvc_uidmap, 1);
    i_array_init(&m->arr, array_count(&src->arr) + 1);
    array_append_array(&m->arr, &src->arr);
    return m;
}

const dvc_uid_entry *dvc_uidmap_entries(const dvc_uidmap *m, size_t *n_r)
{
    unsigned int n;
    const struct dvc_uid_entry *e = array_get(&m->arr, &n);
    *n_r = n;
    return e;
}

static bool uidmap_find(const dvc_uidmap *m, uint32_t uid, unsigned int *idx_r)
{
    unsigned int n;
    const struct dvc_uid_entry *e = array_get(&m->arr, &n);
    return bsearch_insert_pos(&uid, e, n, sizeof(*e), entry_cmp, idx_r);
}

size_t dvc_uidmap_insert_set(dvc_uidmap *m, const dvc_srs *uids)
{
    const struct seq_range *r;
    size_t inserted = 0;
    unsigned int idx;
    array_foreach(&uids->arr, r) {
        for (uint32_t v = r->seq1;; v++) {
            if (!uidmap_find(m, v, &idx)) {
                struct dvc_uid_entry e = { v, 0 };
                array_insert(&m->arr, idx, &e, 1);
                inserted++;
            }
            if (v == r->seq2)
                break;
        }
    }
    return inserted;
}

void dvc_uidmap_append_sorted(dvc_uidmap *m, const dvc_uid_entry *e, size_t n)
{
    array_append(&m->arr, e, (unsigned int)n);
}

size_t dvc_uidmap_erase_set(dvc_uidmap *m, const dvc_srs *uids, dvc_srs *dropped)
{
    const struct seq_range *r;
    size_t erased = 0;
    unsigned int idx;
    array_foreach(&uids->arr, r) {
        for (uint32_t v = r->seq1;; v++) {
            if (uidmap_find(m, v, &idx)) {
                const struct dvc_uid_entry *e = array_idx(&m->arr, idx);
                if (e->virtual_uid != 0)
                    seq_range_array_add(&dropped->arr, e->virtual_uid);
                array_delete(&m->arr, idx, 1);
                erased++;
            }
            if (v == r->seq2)
                break;
        }
    }
    return erased;
}

size_t dvc_uidmap_translate(const dvc_uidmap *m, const dvc_srs *uids, dvc_srs *out)
{
    const struct seq_range *r;
    size_t found = 0;
    unsigned int idx;
    array_foreach(&uids->arr, r) {
        for (uint32_t v = r->seq1;; v++) {
            if (uidmap_find(m, v, &idx)) {
                const struct dvc_uid_entry *e = array_idx(&m->arr, idx);
                if (e->virtual_uid != 0)
                    seq_range_array_add(&out->arr, e->virtual_uid);
                found++;
            }
            if (v == r->seq2)
                break;
        }
    }
    return found;
}

uint64_t dvc_uidmap_lookup_each(const dvc_uidmap *m, const uint32_t *q, size_t n)
{
    uint64_t sum = 0;
    unsigned int idx;
    for (size_t i = 0; i < n; i++) {
        if (uidmap_find(m, q[i], &idx)) {
            const struct dvc_uid_entry *e = array_idx(&m->arr, idx);
            sum += e->virtual_uid;
        }
    }
    return sum;
}
