/* Word lists and the essay generator of clttt ruler. Every word list and
 * sentence pattern here was written for this repository. */
#include "ruler_text.h"

#include <stdio.h>
#include <string.h>

void ruler_rng_seed(ruler_rng *rng, uint64_t seed) { rng->state = seed; }

uint64_t ruler_rng_next(ruler_rng *rng) {
  uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Modulo bias is below 2^-40 for every n a task uses: not worth rejection. */
uint64_t ruler_rng_below(ruler_rng *rng, uint64_t n) { return ruler_rng_next(rng) % n; }

double ruler_rng_unit(ruler_rng *rng) { return (double)(ruler_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t ruler_mix(uint64_t seed, uint64_t value) {
  ruler_rng rng = {seed ^ (value * 0xD6E8FEB86659FD93ull)};
  return ruler_rng_next(&rng);
}

/* FNV-1a: task names become stream numbers. */
uint64_t ruler_hash_string(const char *text) {
  uint64_t hash = 0xCBF29CE484222325ull;
  for (; *text; text++)
    hash = (hash ^ (unsigned char)*text) * 0x100000001B3ull;
  return hash;
}

const char *const ruler_adjectives[] = {
    "able", "ancient", "angry", "bitter", "black", "bold", "brave", "brief", "bright", "broad",
    "brown", "busy", "calm", "careful", "cheap", "clean", "clear", "clever", "cold", "cool",
    "crisp", "crooked", "curious", "damp", "dark", "deep", "dense", "distant", "dry", "dull",
    "eager", "early", "easy", "empty", "even", "faint", "fair", "famous", "fancy", "fast",
    "fierce", "firm", "flat", "fond", "fragile", "free", "fresh", "friendly", "full", "gentle",
    "giant", "glad", "golden", "good", "grand", "gray", "great", "green", "happy", "hard",
    "harsh", "heavy", "hidden", "high", "hollow", "honest", "humble", "hungry", "icy", "idle",
    "jolly", "keen", "kind", "large", "late", "lazy", "lean", "little", "lively", "lonely",
    "long", "loud", "lovely", "low", "loyal", "lucky", "merry", "mild", "modern", "narrow",
    "neat", "nervous", "new", "nice", "noble", "odd", "old", "open", "orange", "pale",
    "patient", "plain", "pleasant", "proper", "poor", "proud", "pure", "purple", "quick", "quiet",
    "rapid", "rare", "raw", "ready", "red", "rich", "rough", "round", "royal", "rural",
    "rusty", "sad", "safe", "salty", "sharp", "shiny", "short", "shy", "silent", "silver",
    "simple", "sleepy", "slim", "slow", "small", "smooth", "soft", "solid", "sour", "spare",
    "steady", "steep", "sticky", "stiff", "strange", "strict", "strong", "sturdy", "sudden", "sunny",
    "super", "sweet", "swift", "tall", "tame", "tender", "thick", "thin", "tidy", "tiny",
    "tired", "tough", "true", "ugly", "upper", "urban", "vast", "violet", "vivid", "warm",
    "weak", "wet", "white", "whole", "wide", "wild", "wise", "witty", "wooden", "young",
    "yellow", "zealous"};
const int ruler_adjective_count = (int)(sizeof ruler_adjectives / sizeof ruler_adjectives[0]);

const char *const ruler_nouns[] = {
    "acorn", "actor", "airport", "anchor", "angle", "ankle", "apple", "apron", "arch", "arrow",
    "artist", "attic", "autumn", "badge", "bakery", "balloon", "bamboo", "banjo", "barn", "basket",
    "beach", "beard", "bell", "bench", "bicycle", "blanket", "boat", "bottle", "bridge", "broom",
    "bucket", "button", "cabin", "cable", "camel", "candle", "canoe", "canyon", "carpet", "castle",
    "cellar", "chair", "chapel", "cherry", "chimney", "circle", "cliff", "clock", "cloud", "coat",
    "compass", "cookie", "copper", "cottage", "county", "crayon", "creek", "crown", "cup", "curtain",
    "cushion", "daisy", "desert", "diamond", "dinner", "doctor", "dolphin", "donkey", "dragon", "drawer",
    "drum", "eagle", "elbow", "engine", "envelope", "fabric", "falcon", "farmer", "feather", "fence",
    "ferry", "field", "finger", "flag", "flute", "forest", "fountain", "fox", "garden", "garlic",
    "gate", "ginger", "glove", "goat", "guitar", "hammer", "harbor", "harvest", "hat", "helmet",
    "hill", "honey", "horse", "island", "jacket", "jelly", "kettle", "kitchen", "kite", "ladder",
    "lake", "lamp", "lantern", "lemon", "letter", "library", "lion", "lizard", "meadow", "melon",
    "mirror", "monkey", "moon", "mountain", "museum", "needle", "nest", "notebook", "ocean", "office",
    "onion", "orchard", "otter", "owl", "paddle", "painter", "palace", "panda", "parcel", "parrot",
    "peach", "pencil", "pepper", "piano", "pillow", "pilot", "planet", "pocket", "pond", "pumpkin",
    "puzzle", "rabbit", "radio", "rainbow", "raven", "ribbon", "river", "robot", "rocket", "saddle",
    "sailor", "salad", "school", "scarf", "shadow", "shelf", "shovel", "singer", "skate", "sled",
    "slipper", "snail", "spoon", "squirrel", "stable", "station", "statue", "stone", "storm", "street",
    "sugar", "summer", "sweater", "table", "teacher", "temple", "thunder", "ticket", "tiger", "timber",
    "turnip", "tower", "tractor", "train", "tunnel", "turtle", "umbrella", "valley", "village", "violin",
    "wagon", "walnut", "wallet", "window", "winter", "wizard", "wolf", "yard", "zebra"};
const int ruler_noun_count = (int)(sizeof ruler_nouns / sizeof ruler_nouns[0]);

const char *const ruler_verbs[] = {
    "accept", "admire", "answer", "arrange", "arrive", "bake", "borrow", "bounce", "build", "carry",
    "change", "chase", "check", "gallop", "climb", "collect", "count", "cover", "crawl", "dance",
    "deliver", "design", "discover", "draw", "dream", "drink", "drive", "enjoy", "explain", "explore",
    "fetch", "fill", "find", "fix", "fold", "follow", "gather", "greet", "guard", "guide",
    "hang", "help", "hold", "hunt", "imagine", "invent", "join", "jump", "juggle", "kick",
    "knock", "laugh", "learn", "lift", "listen", "load", "lock", "mend", "mix", "move",
    "notice", "offer", "hike", "order", "pack", "paint", "pass", "plant", "play", "polish",
    "pour", "print", "promise", "pull", "push", "reach", "read", "remember", "repair", "rescue",
    "return", "ride", "roll", "run", "sail", "save", "scatter", "search", "sell", "send",
    "sew", "shake", "share", "shout", "sing", "sketch", "sleep", "smell", "solve", "sort",
    "spill", "splash", "spin", "stack", "start", "stir", "study", "swim", "teach", "throw",
    "knit", "touch", "trace", "travel", "trust", "visit", "wander", "wash", "watch", "weave",
    "whisper", "wish", "wonder", "write"};
const int ruler_verb_count = (int)(sizeof ruler_verbs / sizeof ruler_verbs[0]);

long ruler_pool_written_count(void) {
  return (long)ruler_noun_count + ruler_adjective_count + ruler_verb_count;
}

/* Made-up words alternate a consonant and a vowel: no written word has that
 * shape (tests/check_ruler.c checks), so the pool never repeats a word. */
static const char consonants[] = "bdfgklmnprstvz";
static const char vowels[] = "aeiou";

void ruler_pool_word(long index, char *out) {
  if (index < ruler_noun_count) {
    strcpy(out, ruler_nouns[index]);
    return;
  }
  index -= ruler_noun_count;
  if (index < ruler_adjective_count) {
    strcpy(out, ruler_adjectives[index]);
    return;
  }
  index -= ruler_adjective_count;
  if (index < ruler_verb_count) {
    strcpy(out, ruler_verbs[index]);
    return;
  }
  index -= ruler_verb_count;
  const long syllables = (long)(sizeof consonants - 1) * (long)(sizeof vowels - 1);
  long count = 3, words = syllables * syllables * syllables;
  while (index >= words && count < 5) {
    index -= words;
    words *= syllables;
    count++;
  }
  /* Multiplying by a prime coprime to the word count permutes the indices
   * (no overflow: count <= 5 keeps index x prime below 2^63), so consecutive
   * words do not share their start. */
  unsigned long long scrambled = ((unsigned long long)index * 2654435761ull + 12345u) % (unsigned long long)words;
  int length = 0;
  for (long s = 0; s < count; s++) {
    long syllable = (long)(scrambled % (unsigned long long)syllables);
    scrambled /= (unsigned long long)syllables;
    out[length++] = consonants[syllable / (long)(sizeof vowels - 1)];
    out[length++] = vowels[syllable % (long)(sizeof vowels - 1)];
  }
  out[length] = '\0';
}

/* ------------------------------------------------------------------ */
/* The essay: plain sentences about a made-up countryside, from patterns and
 * the lists above. Grammatical, dull and unambiguous, as a haystack should
 * be: nothing in it looks like a needle (no numbers, no "magic"). */

static const char *const names[] = {
    "Ada", "Bruno", "Clara", "Dmitri", "Elena", "Felix", "Greta", "Hugo", "Ines", "Jonas",
    "Kira", "Leo", "Mira", "Nils", "Olga", "Pablo", "Rosa", "Sami", "Tara", "Viktor"};
static const char *const times[] = {
    "In the morning", "At noon", "In the evening", "Late at night", "Every spring", "After the rain",
    "Before dawn", "On market days", "During the long winter", "Once a year", "Some days", "Later"};
static const char *const adverbs[] = {
    "slowly", "quietly", "carefully", "happily", "again", "without a word", "as usual", "with great care",
    "in silence", "for a while", "before supper", "more than once"};
static const char *const places[] = {
    "near the river", "by the old bridge", "behind the barn", "at the edge of the forest", "in the village square",
    "on the hill", "beside the lake", "under the tall trees", "along the narrow street", "inside the cottage",
    "past the orchard", "across the meadow"};
static const char *const reflections[] = {
    "Nobody minds.", "It has always been this way.", "The neighbors agree.", "That is how the story goes.",
    "Few people remember why.", "It is a small thing, but it matters.", "The days pass like that.",
    "Nothing else changes.", "The children laugh about it.", "Everyone knows the way."};

#define PICK(list, rng) list[ruler_rng_below(rng, sizeof list / sizeof list[0])]

/* "carry" -> "carries", "fetch" -> "fetches", "sing" -> "sings". */
static void third_person(const char *verb, char *out, size_t capacity) {
  size_t length = strlen(verb);
  char last = verb[length - 1], before = length > 1 ? verb[length - 2] : 'a';
  if (last == 'y' && !strchr("aeiou", before))
    snprintf(out, capacity, "%.*sies", (int)(length - 1), verb);
  else if (last == 's' || last == 'x' || last == 'z' || last == 'o' ||
           (last == 'h' && (before == 'c' || before == 's')))
    snprintf(out, capacity, "%ses", verb);
  else
    snprintf(out, capacity, "%ss", verb);
}

static const char *article(const char *word) { return strchr("aeiou", word[0]) ? "an" : "a"; }

int ruler_essay_sentence(uint64_t seed, long index, char *out, int capacity) {
  ruler_rng rng;
  ruler_rng_seed(&rng, ruler_mix(ruler_mix(seed, 0xE55A7), (uint64_t)index));
  const char *adjective = PICK(ruler_adjectives, &rng), *adjective2 = PICK(ruler_adjectives, &rng);
  const char *noun = PICK(ruler_nouns, &rng), *noun2 = PICK(ruler_nouns, &rng);
  const char *name = PICK(names, &rng), *name2 = PICK(names, &rng);
  char verb[48];
  third_person(PICK(ruler_verbs, &rng), verb, sizeof verb);
  const char *base_verb = PICK(ruler_verbs, &rng);
  const char *time = PICK(times, &rng), *adverb = PICK(adverbs, &rng), *place = PICK(places, &rng);
  int written = 0;
  switch (ruler_rng_below(&rng, 8)) {
  case 0:
    written = snprintf(out, (size_t)capacity, "%s, the %s %s %s the %s %s.", time, adjective, noun, verb, adjective2,
                       noun2);
    break;
  case 1:
    written = snprintf(out, (size_t)capacity, "%s %s %s %s %s %s.", name, verb, article(adjective), adjective, noun,
                       place);
    break;
  case 2:
    written = snprintf(out, (size_t)capacity, "The %s %s %s %s.", noun, place, verb, adverb);
    break;
  case 3:
    written = snprintf(out, (size_t)capacity, "%s and %s %s the %s %s together.", name, name2, base_verb, noun,
                       adverb);
    break;
  case 4:
    written = snprintf(out, (size_t)capacity, "People say the %s %s was once very %s.", noun, place, adjective);
    break;
  case 5:
    written = snprintf(out, (size_t)capacity, "%s, %s likes to %s the %s %s. %s", time, name, base_verb, adjective,
                       noun, PICK(reflections, &rng));
    break;
  case 6:
    written = snprintf(out, (size_t)capacity, "If the %s is %s, %s %s the %s.", noun, adjective, name, verb, noun2);
    break;
  default:
    written = snprintf(out, (size_t)capacity, "There is %s %s %s %s, and it is %s.", article(adjective), adjective,
                       noun, place, adjective2);
    break;
  }
  return written >= 0 && written < capacity ? written : -1;
}
