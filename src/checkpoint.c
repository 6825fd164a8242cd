/* Checkpoint directory: one safetensors file, or shards named by an index. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "error.h"
#include "file.h"

#define SINGLE_FILE_NAME "model.safetensors"
#define INDEX_FILE_NAME "model.safetensors.index.json"

static char *join_path(const char *dir, const char *name) {
  size_t length = strlen(dir) + 1 + strlen(name) + 1;
  char *path = malloc(length);
  if (path)
    snprintf(path, length, "%s/%s", dir, name);
  return path;
}

static int file_exists(const char *path) {
  struct stat info;
  return stat(path, &info) == 0;
}

void checkpoint_close(checkpoint *ckpt) {
  if (!ckpt)
    return;
  for (int i = 0; i < ckpt->shard_count; i++)
    safetensors_close(&ckpt->shards[i]);
  free(ckpt->shards);
  free(ckpt->dir);
  memset(ckpt, 0, sizeof *ckpt);
}

static clttt_status open_single(checkpoint *ckpt) {
  char *path = join_path(ckpt->dir, SINGLE_FILE_NAME);
  if (!path)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory", ckpt->dir);
  if (!file_exists(path)) {
    clttt_status status = clttt_fail(CLTTT_ERROR_IO, "%s: no %s and no %s in this directory",
                                     ckpt->dir, SINGLE_FILE_NAME, INDEX_FILE_NAME);
    free(path);
    return status;
  }
  ckpt->shards = calloc(1, sizeof *ckpt->shards);
  if (!ckpt->shards) {
    free(path);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory", ckpt->dir);
  }
  clttt_status status = safetensors_open(&ckpt->shards[0], path);
  free(path);
  if (status == CLTTT_SUCCESS)
    ckpt->shard_count = 1;
  return status;
}

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* With an index, checkpoint_find searches the shards in turn; a tensor held
 * by two shards would make the answer depend on shard order, so it is refused. */
static clttt_status check_unique_names(const checkpoint *ckpt) {
  size_t total = 0;
  for (int i = 0; i < ckpt->shard_count; i++)
    total += (size_t)ckpt->shards[i].count;
  if (total < 2)
    return CLTTT_SUCCESS;
  const char **names = malloc(total * sizeof *names);
  if (!names)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory", ckpt->dir);
  size_t used = 0;
  for (int i = 0; i < ckpt->shard_count; i++)
    for (int j = 0; j < ckpt->shards[i].count; j++)
      names[used++] = ckpt->shards[i].tensors[j].name;
  qsort(names, total, sizeof *names, compare_strings);
  clttt_status status = CLTTT_SUCCESS;
  for (size_t i = 1; i < total; i++) {
    if (strcmp(names[i - 1], names[i]) == 0) {
      const safetensors_file *first = NULL;
      const safetensors_file *second = NULL;
      for (int s = 0; s < ckpt->shard_count; s++) {
        if (safetensors_find(&ckpt->shards[s], names[i])) {
          if (!first)
            first = &ckpt->shards[s];
          else if (!second)
            second = &ckpt->shards[s];
        }
      }
      status = clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT, "%s: tensor %s is in two shards: %s and %s",
                          ckpt->dir, names[i], first ? first->path : "?",
                          second ? second->path : "?");
      break;
    }
  }
  free(names);
  return status;
}

/* A shard name is joined to the model directory, and the index may come
 * from anywhere: an absolute name or a ".." component would open a file
 * outside the directory. Subdirectories inside it are allowed. */
static int shard_name_stays_inside(const char *name) {
  if (name[0] == '/')
    return 0;
  for (const char *component = name; *component;) {
    size_t length = strcspn(component, "/");
    if (length == 2 && component[0] == '.' && component[1] == '.')
      return 0;
    component += length;
    if (*component == '/')
      component++;
  }
  return 1;
}

static clttt_status open_sharded(checkpoint *ckpt, const char *index_path) {
  char *text = NULL;
  size_t size = 0;
  CLTTT_TRY(file_read_all(index_path, FILE_CAP_SHARD_INDEX, "a shard index", &text, &size));
  json_error_t error;
  json_t *index = json_loadb(text, size, JSON_REJECT_DUPLICATES, &error);
  free(text);
  if (!index)
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT, "%s: line %d column %d: %s", index_path,
                      error.line, error.column, error.text);
  const json_t *weight_map = json_is_object(index) ? json_object_get(index, "weight_map") : NULL;
  if (!json_is_object(weight_map) || json_object_size(weight_map) == 0) {
    json_decref(index);
    return clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                      "%s: \"weight_map\" missing, empty or not an object", index_path);
  }

  /* Distinct shard names, in sorted order so each file is opened once. */
  size_t entries = json_object_size(weight_map);
  const char **shard_names = malloc(entries * sizeof *shard_names);
  if (!shard_names) {
    json_decref(index);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory", index_path);
  }
  size_t used = 0;
  const char *tensor_name;
  const json_t *shard_value;
  clttt_status status = CLTTT_SUCCESS;
  json_object_foreach((json_t *)weight_map, tensor_name, shard_value) {
    if (!json_is_string(shard_value) || json_string_length(shard_value) == 0) {
      status = clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                          "%s: tensor %s: weight_map value is not a file name", index_path,
                          tensor_name);
      break;
    }
    /* Jansson refuses \u0000 in strings, so no NUL can hide a suffix here. */
    const char *shard_name = json_string_value(shard_value);
    if (!shard_name_stays_inside(shard_name)) {
      status = clttt_fail(CLTTT_ERROR_BAD_CHECKPOINT,
                          "%s: tensor %s: shard \"%s\" is outside the model directory (absolute or "
                          "with a \"..\" component)",
                          index_path, tensor_name, shard_name);
      break;
    }
    shard_names[used++] = json_string_value(shard_value);
  }
  size_t distinct = 0;
  if (status == CLTTT_SUCCESS) {
    qsort(shard_names, used, sizeof *shard_names, compare_strings);
    for (size_t i = 0; i < used; i++)
      if (distinct == 0 || strcmp(shard_names[distinct - 1], shard_names[i]) != 0)
        shard_names[distinct++] = shard_names[i];
    ckpt->shards = calloc(distinct, sizeof *ckpt->shards);
    if (!ckpt->shards)
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory", index_path);
  }
  for (size_t i = 0; status == CLTTT_SUCCESS && i < distinct; i++) {
    char *shard_path = join_path(ckpt->dir, shard_names[i]);
    if (!shard_path) {
      status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory", index_path);
      break;
    }
    status = safetensors_open(&ckpt->shards[i], shard_path);
    free(shard_path);
    if (status != CLTTT_SUCCESS)
      clttt_fail_context(status, "%s", index_path);
    else
      ckpt->shard_count++;
  }
  free(shard_names);

  /* Every tensor the index promises must be where it says. */
  if (status == CLTTT_SUCCESS) {
    json_object_foreach((json_t *)weight_map, tensor_name, shard_value) {
      char *shard_path = join_path(ckpt->dir, json_string_value(shard_value));
      if (!shard_path) {
        status = clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory", index_path);
        break;
      }
      for (int s = 0; s < ckpt->shard_count; s++) {
        if (strcmp(ckpt->shards[s].path, shard_path) == 0 &&
            !safetensors_find(&ckpt->shards[s], tensor_name)) {
          status = clttt_fail(CLTTT_ERROR_MISSING_TENSOR, "%s: tensor %s listed in %s missing",
                              shard_path, tensor_name, index_path);
          break;
        }
      }
      free(shard_path);
      if (status != CLTTT_SUCCESS)
        break;
    }
  }
  json_decref(index);
  if (status == CLTTT_SUCCESS)
    status = check_unique_names(ckpt);
  return status;
}

clttt_status checkpoint_open(checkpoint *ckpt, const char *dir) {
  if (!ckpt || !dir)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "checkpoint_open: checkpoint and dir are required");
  memset(ckpt, 0, sizeof *ckpt);
  ckpt->dir = strdup(dir);
  if (!ckpt->dir)
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory", dir);

  char *index_path = join_path(dir, INDEX_FILE_NAME);
  if (!index_path) {
    checkpoint_close(ckpt);
    return clttt_fail(CLTTT_ERROR_OUT_OF_HOST_MEMORY, "%s: no memory", dir);
  }
  clttt_status status =
      file_exists(index_path) ? open_sharded(ckpt, index_path) : open_single(ckpt);
  free(index_path);
  if (status != CLTTT_SUCCESS)
    checkpoint_close(ckpt);
  return status;
}

const safetensors_tensor *checkpoint_find(const checkpoint *ckpt, const char *name,
                                          const safetensors_file **shard) {
  if (shard)
    *shard = NULL;
  if (!ckpt || !name)
    return NULL;
  for (int i = 0; i < ckpt->shard_count; i++) {
    const safetensors_tensor *tensor = safetensors_find(&ckpt->shards[i], name);
    if (tensor) {
      if (shard)
        *shard = &ckpt->shards[i];
      return tensor;
    }
  }
  return NULL;
}

static void format_shape(char *text, size_t capacity, const int64_t *shape, int ndim) {
  size_t used = 0;
  text[0] = '\0';
  used += (size_t)snprintf(text, capacity, "[");
  for (int i = 0; i < ndim && used < capacity; i++)
    used += (size_t)snprintf(text + used, capacity - used, "%s%lld", i ? ", " : "",
                             (long long)shape[i]);
  if (used < capacity)
    snprintf(text + used, capacity - used, "]");
}

clttt_status checkpoint_tensor(const checkpoint *ckpt, const char *name, const int64_t *shape, int ndim,
                               const safetensors_tensor **tensor_out, const safetensors_file **shard_out) {
  *tensor_out = NULL;
  if (shard_out)
    *shard_out = NULL;
  if (!ckpt || !name || (!shape && ndim > 0) || ndim < 0)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "checkpoint_tensor: bad arguments for %s",
                      name ? name : "(null)");
  const safetensors_file *shard = NULL;
  const safetensors_tensor *tensor = checkpoint_find(ckpt, name, &shard);
  if (!tensor) {
    char *where = ckpt->shard_count == 1 ? NULL : join_path(ckpt->dir ? ckpt->dir : ".", INDEX_FILE_NAME);
    const char *file = ckpt->shard_count == 1 ? ckpt->shards[0].path : where ? where : "checkpoint";
    clttt_status status =
        clttt_fail(CLTTT_ERROR_MISSING_TENSOR, "%s: tensor %s missing", file, name);
    free(where);
    return status;
  }
  int same = tensor->ndim == ndim;
  for (int i = 0; same && i < ndim; i++)
    same = tensor->shape[i] == shape[i];
  if (!same) {
    char expected[256], found[256];
    format_shape(expected, sizeof expected, shape, ndim);
    format_shape(found, sizeof found, tensor->shape, tensor->ndim);
    return clttt_fail(CLTTT_ERROR_SHAPE_MISMATCH, "%s: tensor %s has shape %s, expected %s",
                      shard->path, name, found, expected);
  }
  *tensor_out = tensor;
  if (shard_out)
    *shard_out = shard;
  return CLTTT_SUCCESS;
}

clttt_status checkpoint_read_f32(const checkpoint *ckpt, const char *name, const int64_t *shape,
                                 int ndim, float *out) {
  if (!out)
    return clttt_fail(CLTTT_ERROR_INVALID_ARGUMENT, "checkpoint_read_f32: no output for %s",
                      name ? name : "(null)");
  const safetensors_tensor *tensor = NULL;
  CLTTT_TRY(checkpoint_tensor(ckpt, name, shape, ndim, &tensor, NULL));
  safetensors_to_f32(tensor, out);
  return CLTTT_SUCCESS;
}
