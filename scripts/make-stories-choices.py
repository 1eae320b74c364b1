#!/usr/bin/env python3
"""A small multiple-choice task from TinyStories text (shardpress's JSONL format).

For each story of the text (stories separated by a line <|endoftext|>): the context is its
first three sentences; the choices are its true fourth sentence and the fourth sentences of
the next three stories (in file order, wrapping around); the right answer's place rotates
with the story's index. Deterministic: no randomness, the same file for the same text.

usage: scripts/make-stories-choices.py ../shared/fixtures/stories260k/text/eval.txt > choices.jsonl
"""
import json
import re
import sys

CONTEXT_SENTENCES = 3
CHOICES = 4


def sentences(story):
    # A sentence ends at . ! or ? (with any closing quote) before a space or newline.
    parts = re.findall(r'.+?[.!?]["\u201d]?(?=\s|$)|.+$', ' '.join(story.split()))
    return [p.strip() for p in parts if p.strip()]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    with open(sys.argv[1], encoding='utf-8') as f:
        text = f.read()
    stories = [sentences(s) for s in text.split('<|endoftext|>')]
    stories = [s for s in stories if len(s) > CONTEXT_SENTENCES]
    if len(stories) < CHOICES:
        sys.exit(f'{sys.argv[1]}: fewer than {CHOICES} stories with {CONTEXT_SENTENCES + 1} sentences')
    for i, s in enumerate(stories):
        true = s[CONTEXT_SENTENCES]
        others = [stories[(i + k) % len(stories)][CONTEXT_SENTENCES] for k in range(1, CHOICES)]
        answer = i % CHOICES
        choices = others[:answer] + [true] + others[answer:]
        item = {'context': ' '.join(s[:CONTEXT_SENTENCES]),
                'choices': [' ' + c for c in choices],
                'answer': answer}
        print(json.dumps(item, ensure_ascii=False))


if __name__ == '__main__':
    main()
