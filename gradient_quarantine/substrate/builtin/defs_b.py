"""Built-in problem set B: easy string, word-list and small simulation problems (ids prefixed `b_`).

Each definition follows the format documented in `build.py`; expected outputs are computed there by running
the canonical solution, so only inputs are listed here. The first three tests are the visible examples.
Canonical solutions are deliberately short and idiomatic: teacher completions are built from them and a
135M-parameter model has to be able to imitate them.

    python -m gradient_quarantine.substrate.builtin.build
"""

from __future__ import annotations

PROBLEMS: list[dict] = [
    # ------------------------------------------------------------------ strings
    {
        "id": "b_count_vowels",
        "statement": (
            "Given a string `s`, return the number of vowels in it. The vowels are a, e, i, o and u, in "
            "lowercase or uppercase; 'y' is not a vowel. All other characters (consonants, digits, spaces, "
            "punctuation) are ignored."
        ),
        "signature": "def countVowels(self, s: str) -> int:",
        "solution": """
class Solution:
    def countVowels(self, s: str) -> int:
        return sum(1 for c in s.lower() if c in "aeiou")
""",
        "tests": [
            {"s": "hello world"},
            {"s": "AEIOU"},
            {"s": "rhythm"},
            {"s": ""},
            {"s": "a"},
            {"s": "Y"},
            {"s": "Programming Is Fun!"},
            {"s": "bcdfg"},
            {"s": "aaaa"},
            {"s": "Queue"},
            {"s": "123 apple pie"},
            {"s": "xyz AbE"},
            {"s": "OoOo"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of printable ASCII characters."],
    },
    {
        "id": "b_reverse_words",
        "statement": (
            "Given a string `s` of words separated by spaces, return a string with the words in reverse "
            "order. A word is a maximal run of non-space characters. In the result the words are separated "
            "by exactly one space, with no leading or trailing spaces, even if `s` had extra spaces. If `s` "
            "contains no words, return an empty string."
        ),
        "signature": "def reverseWords(self, s: str) -> str:",
        "solution": """
class Solution:
    def reverseWords(self, s: str) -> str:
        return " ".join(reversed(s.split()))
""",
        "tests": [
            {"s": "the sky is blue"},
            {"s": "  hello world  "},
            {"s": "a good   example"},
            {"s": ""},
            {"s": "   "},
            {"s": "single"},
            {"s": "a b"},
            {"s": "one two three four"},
            {"s": "Hi, there!"},
            {"s": "x  y  z"},
            {"s": "  lead"},
            {"s": "trail  "},
        ],
        "constraints": [
            "0 <= len(s) <= 100",
            "s consists of English letters, digits, punctuation and spaces.",
        ],
    },
    {
        "id": "b_is_palindrome_alnum",
        "statement": (
            "Given a string `s`, return True if it reads the same forwards and backwards after keeping only "
            "its letters and digits and ignoring the difference between uppercase and lowercase; otherwise "
            "return False. A string with no letters or digits counts as a palindrome."
        ),
        "signature": "def isPalindrome(self, s: str) -> bool:",
        "solution": """
class Solution:
    def isPalindrome(self, s: str) -> bool:
        chars = [c.lower() for c in s if c.isalnum()]
        return chars == chars[::-1]
""",
        "tests": [
            {"s": "A man, a plan, a canal: Panama"},
            {"s": "race a car"},
            {"s": "No lemon, no melon"},
            {"s": ""},
            {"s": "a"},
            {"s": "ab"},
            {"s": "Aa"},
            {"s": "0P"},
            {"s": "12321"},
            {"s": "123 45"},
            {"s": "Was it a car or a cat I saw?"},
            {"s": "hello"},
            {"s": "!!"},
            {"s": "abca"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of printable ASCII characters."],
    },
    {
        "id": "b_most_frequent_char",
        "statement": (
            "Given a non-empty string `s` of lowercase English letters, return the character that occurs "
            "most often. If several characters share the highest count, return the one that comes first in "
            "the alphabet."
        ),
        "signature": "def mostFrequentChar(self, s: str) -> str:",
        "solution": """
class Solution:
    def mostFrequentChar(self, s: str) -> str:
        counts = Counter(s)
        return min(counts, key=lambda c: (-counts[c], c))
""",
        "tests": [
            {"s": "banana"},
            {"s": "apple"},
            {"s": "abcabc"},
            {"s": "z"},
            {"s": "zzy"},
            {"s": "zy"},
            {"s": "mississippi"},
            {"s": "bbbaaa"},
            {"s": "aabbbc"},
            {"s": "xyzzyx"},
            {"s": "qwerty"},
            {"s": "hello"},
            {"s": "cab"},
        ],
        "constraints": ["1 <= len(s) <= 100", "s consists of lowercase English letters."],
    },
    {
        "id": "b_capitalize_words",
        "statement": (
            "Given a string `s` of words separated by single spaces, return it with every word capitalised: "
            "the first character of each word in uppercase and all other characters of the word in "
            "lowercase. Characters that are not letters stay as they are, and the spaces are kept."
        ),
        "signature": "def capitalizeWords(self, s: str) -> str:",
        "solution": """
class Solution:
    def capitalizeWords(self, s: str) -> str:
        return " ".join(word.capitalize() for word in s.split(" "))
""",
        "tests": [
            {"s": "hello world"},
            {"s": "PYTHON is FUN"},
            {"s": "a"},
            {"s": ""},
            {"s": "mIxEd CaSe"},
            {"s": "1st place"},
            {"s": "x y z"},
            {"s": "already Done"},
            {"s": "don't stop"},
            {"s": "abc"},
            {"s": "ABC DEF"},
            {"s": "the end."},
        ],
        "constraints": [
            "0 <= len(s) <= 100",
            "s consists of English letters, digits, punctuation and single spaces between words.",
            "s has no leading or trailing spaces.",
        ],
    },
    {
        "id": "b_run_length_encode",
        "statement": (
            "Given a string `s`, compress it with run-length encoding: replace every maximal run of the same "
            "character by that character followed by the length of the run in decimal. The length is "
            "written even when it is 1. Return the encoded string; an empty string encodes to an empty "
            "string."
        ),
        "signature": "def runLengthEncode(self, s: str) -> str:",
        "solution": """
class Solution:
    def runLengthEncode(self, s: str) -> str:
        return "".join(f"{ch}{len(list(run))}" for ch, run in groupby(s))
""",
        "tests": [
            {"s": "aaabcc"},
            {"s": "abc"},
            {"s": "wwwwwwwwwwwwb"},
            {"s": ""},
            {"s": "a"},
            {"s": "aa"},
            {"s": "aabbaa"},
            {"s": "Aaa"},
            {"s": "  x"},
            {"s": "zzzzz"},
            {"s": "abab"},
            {"s": "xyyyz"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of English letters and spaces."],
    },
    {
        "id": "b_run_length_decode",
        "statement": (
            "You are given a run-length encoded string `s`. It is a sequence of pairs; each pair is one "
            "lowercase letter followed by a single digit from 1 to 9 saying how many times that letter "
            "repeats. Return the decoded string. An empty input decodes to an empty string."
        ),
        "signature": "def runLengthDecode(self, s: str) -> str:",
        "solution": """
class Solution:
    def runLengthDecode(self, s: str) -> str:
        return "".join(s[i] * int(s[i + 1]) for i in range(0, len(s), 2))
""",
        "tests": [
            {"s": "a3b1c2"},
            {"s": "x5"},
            {"s": "a1b1c1"},
            {"s": ""},
            {"s": "z9"},
            {"s": "a2a2"},
            {"s": "m1"},
            {"s": "b3a3"},
            {"s": "q1w2e3"},
            {"s": "k4j1"},
            {"s": "a9b9"},
            {"s": "c2"},
        ],
        "constraints": [
            "0 <= len(s) <= 40 and len(s) is even",
            "Characters at even indices are lowercase letters; characters at odd indices are digits 1-9.",
        ],
    },
    {
        "id": "b_count_distinct_chars",
        "statement": (
            "Given a string `s`, return how many different characters it contains. Uppercase and lowercase "
            "versions of a letter count as different characters, and spaces, digits and punctuation count "
            "as characters too."
        ),
        "signature": "def countDistinct(self, s: str) -> int:",
        "solution": """
class Solution:
    def countDistinct(self, s: str) -> int:
        return len(set(s))
""",
        "tests": [
            {"s": "hello"},
            {"s": "aaaa"},
            {"s": "Aa"},
            {"s": ""},
            {"s": "abc abc"},
            {"s": "112233"},
            {"s": "!?!?"},
            {"s": "abcdefghij"},
            {"s": "The cat"},
            {"s": " "},
            {"s": "AaBbAa"},
            {"s": "mississippi"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of printable ASCII characters."],
    },
    {
        "id": "b_collapse_runs",
        "statement": (
            "Given a string `s`, return the string obtained by replacing every run of identical adjacent "
            "characters with a single copy of that character, so 'aaabccd' becomes 'abcd'. Equal characters "
            "that are not adjacent are all kept. The comparison is case-sensitive."
        ),
        "signature": "def collapseRuns(self, s: str) -> str:",
        "solution": """
class Solution:
    def collapseRuns(self, s: str) -> str:
        return "".join(ch for ch, _ in groupby(s))
""",
        "tests": [
            {"s": "aaabccd"},
            {"s": "abab"},
            {"s": "aaaa"},
            {"s": ""},
            {"s": "a"},
            {"s": "aabbaa"},
            {"s": "Aaa"},
            {"s": "  hi  "},
            {"s": "mississippi"},
            {"s": "112233"},
            {"s": "abc"},
            {"s": "zzzzy"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of printable ASCII characters."],
    },
    {
        "id": "b_remove_adjacent_pairs",
        "statement": (
            "Given a string `s` of lowercase letters, repeatedly delete any two adjacent letters that are "
            "equal, until no two adjacent letters are equal. Return the final string, which may be empty. "
            "(The result does not depend on the order in which pairs are deleted.)"
        ),
        "signature": "def removePairs(self, s: str) -> str:",
        "solution": """
class Solution:
    def removePairs(self, s: str) -> str:
        stack = []
        for c in s:
            if stack and stack[-1] == c:
                stack.pop()
            else:
                stack.append(c)
        return "".join(stack)
""",
        "tests": [
            {"s": "abbaca"},
            {"s": "azxxzy"},
            {"s": "aa"},
            {"s": ""},
            {"s": "a"},
            {"s": "abc"},
            {"s": "aaa"},
            {"s": "abba"},
            {"s": "aabbcc"},
            {"s": "abccbx"},
            {"s": "xyyxz"},
            {"s": "abab"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of lowercase English letters."],
    },
    {
        "id": "b_first_unique_char",
        "statement": (
            "Given a string `s`, return the 0-based index of the first character that appears exactly once "
            "in `s`. If every character repeats, or `s` is empty, return -1. The comparison is "
            "case-sensitive."
        ),
        "signature": "def firstUniqueChar(self, s: str) -> int:",
        "solution": """
class Solution:
    def firstUniqueChar(self, s: str) -> int:
        counts = Counter(s)
        for i, c in enumerate(s):
            if counts[c] == 1:
                return i
        return -1
""",
        "tests": [
            {"s": "leetcode"},
            {"s": "loveleetcode"},
            {"s": "aabb"},
            {"s": ""},
            {"s": "z"},
            {"s": "aA"},
            {"s": "abcabd"},
            {"s": "aabbc"},
            {"s": "xxyzz"},
            {"s": "abab"},
            {"s": "  a"},
            {"s": "dddccdbba"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of printable ASCII characters."],
    },
    {
        "id": "b_is_anagram",
        "statement": (
            "Given two strings `s` and `t`, return True if `t` is an anagram of `s`: it uses exactly the "
            "same characters, each the same number of times, possibly in a different order. Otherwise "
            "return False. The comparison is case-sensitive, and two empty strings are anagrams."
        ),
        "signature": "def isAnagram(self, s: str, t: str) -> bool:",
        "solution": """
class Solution:
    def isAnagram(self, s: str, t: str) -> bool:
        return Counter(s) == Counter(t)
""",
        "tests": [
            {"s": "anagram", "t": "nagaram"},
            {"s": "rat", "t": "car"},
            {"s": "listen", "t": "silent"},
            {"s": "", "t": ""},
            {"s": "a", "t": ""},
            {"s": "ab", "t": "ba"},
            {"s": "aab", "t": "abb"},
            {"s": "Abc", "t": "abc"},
            {"s": "abc", "t": "abcc"},
            {"s": "dusty", "t": "study"},
            {"s": "night", "t": "thing"},
            {"s": "aa", "t": "a"},
        ],
        "constraints": ["0 <= len(s), len(t) <= 100", "s and t consist of English letters."],
    },
    {
        "id": "b_caesar_shift",
        "statement": (
            "Given a string `s` and a non-negative integer `k`, shift every lowercase letter of `s` forward "
            "in the alphabet by `k` positions, wrapping around from 'z' back to 'a'. All other characters "
            "(uppercase letters, digits, spaces, punctuation) stay unchanged. Return the shifted string."
        ),
        "signature": "def caesarShift(self, s: str, k: int) -> str:",
        "solution": """
class Solution:
    def caesarShift(self, s: str, k: int) -> str:
        return "".join(
            chr((ord(c) - ord("a") + k) % 26 + ord("a")) if "a" <= c <= "z" else c for c in s
        )
""",
        "tests": [
            {"s": "abc", "k": 1},
            {"s": "xyz", "k": 3},
            {"s": "hello, world", "k": 13},
            {"s": "", "k": 5},
            {"s": "a", "k": 0},
            {"s": "a", "k": 26},
            {"s": "z", "k": 1},
            {"s": "Hello", "k": 1},
            {"s": "abc 123", "k": 2},
            {"s": "zzz", "k": 27},
            {"s": "m", "k": 100},
            {"s": "Q!", "k": 5},
        ],
        "constraints": ["0 <= len(s) <= 100", "0 <= k <= 1000", "s consists of printable ASCII characters."],
    },
    {
        "id": "b_is_pangram",
        "statement": (
            "Given a string `s`, return True if every letter of the English alphabet from 'a' to 'z' "
            "appears in it at least once, ignoring case; otherwise return False. Characters that are not "
            "letters are ignored."
        ),
        "signature": "def isPangram(self, s: str) -> bool:",
        "solution": """
class Solution:
    def isPangram(self, s: str) -> bool:
        return set(string.ascii_lowercase) <= set(s.lower())
""",
        "tests": [
            {"s": "The quick brown fox jumps over the lazy dog"},
            {"s": "hello world"},
            {"s": "abcdefghijklmnopqrstuvwxyz"},
            {"s": ""},
            {"s": "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
            {"s": "abcdefghijklmnopqrstuvwxy"},
            {"s": "Pack my box with five dozen liquor jugs."},
            {"s": "zyxwvutsrqponmlkjihgfedcba!!"},
            {"s": "Sphinx of black quartz, judge my vow"},
            {"s": "a quick movement of the enemy"},
            {"s": "aaaaaaaaaaaaaaaaaaaaaaaaaa"},
            {"s": "The five boxing wizards jump quickly"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of printable ASCII characters."],
    },
    {
        "id": "b_char_frequency",
        "statement": (
            "Given a string `s`, return a dictionary that maps each character appearing in `s` to the "
            "number of times it appears. Counting is case-sensitive and includes spaces and punctuation. "
            "An empty string gives an empty dictionary."
        ),
        "signature": "def charFrequency(self, s: str) -> Dict[str, int]:",
        "solution": """
class Solution:
    def charFrequency(self, s: str) -> Dict[str, int]:
        return dict(Counter(s))
""",
        "tests": [
            {"s": "hello"},
            {"s": "aabbb"},
            {"s": "Aa"},
            {"s": ""},
            {"s": "a"},
            {"s": "a a"},
            {"s": "112"},
            {"s": "!!?"},
            {"s": "abcabc"},
            {"s": "zzz"},
            {"s": "Mississippi"},
            {"s": "x y"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of printable ASCII characters."],
    },
    {
        "id": "b_is_subsequence",
        "statement": (
            "Given two strings `s` and `t`, return True if `s` is a subsequence of `t`, meaning `s` can be "
            "obtained from `t` by deleting zero or more characters without changing the order of the "
            "remaining ones; otherwise return False. The empty string is a subsequence of every string."
        ),
        "signature": "def isSubsequence(self, s: str, t: str) -> bool:",
        "solution": """
class Solution:
    def isSubsequence(self, s: str, t: str) -> bool:
        i = 0
        for c in t:
            if i < len(s) and s[i] == c:
                i += 1
        return i == len(s)
""",
        "tests": [
            {"s": "abc", "t": "ahbgdc"},
            {"s": "axc", "t": "ahbgdc"},
            {"s": "", "t": "abc"},
            {"s": "", "t": ""},
            {"s": "a", "t": ""},
            {"s": "abc", "t": "abc"},
            {"s": "abc", "t": "cba"},
            {"s": "aa", "t": "a"},
            {"s": "aa", "t": "bana"},
            {"s": "ace", "t": "abcde"},
            {"s": "aec", "t": "abcde"},
            {"s": "b", "t": "abc"},
            {"s": "bb", "t": "abc"},
        ],
        "constraints": ["0 <= len(s), len(t) <= 100", "s and t consist of lowercase English letters."],
    },
    {
        "id": "b_longest_run",
        "statement": (
            "Given a string `s`, return the length of the longest block of consecutive identical "
            "characters. The comparison is case-sensitive. Return 0 for an empty string."
        ),
        "signature": "def longestRun(self, s: str) -> int:",
        "solution": """
class Solution:
    def longestRun(self, s: str) -> int:
        return max((len(list(run)) for _, run in groupby(s)), default=0)
""",
        "tests": [
            {"s": "aaabbc"},
            {"s": "abc"},
            {"s": "abbbbc"},
            {"s": ""},
            {"s": "z"},
            {"s": "aabbcc"},
            {"s": "abcccc"},
            {"s": "AAaa"},
            {"s": "   x"},
            {"s": "xyzzz"},
            {"s": "1112222"},
            {"s": "abab"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of printable ASCII characters."],
    },
    {
        "id": "b_valid_brackets",
        "statement": (
            "Given a string `s` made only of the characters '(', ')', '[', ']', '{' and '}', return True if "
            "the brackets are balanced: every opening bracket is closed by a bracket of the same type, and "
            "brackets are closed in the correct order (the most recently opened one first). Otherwise "
            "return False. The empty string is balanced."
        ),
        "signature": "def isValid(self, s: str) -> bool:",
        "solution": """
class Solution:
    def isValid(self, s: str) -> bool:
        pairs = {")": "(", "]": "[", "}": "{"}
        stack = []
        for c in s:
            if c in pairs:
                if not stack or stack.pop() != pairs[c]:
                    return False
            else:
                stack.append(c)
        return not stack
""",
        "tests": [
            {"s": "()"},
            {"s": "()[]{}"},
            {"s": "(]"},
            {"s": ""},
            {"s": "("},
            {"s": ")"},
            {"s": "([{}])"},
            {"s": "([)]"},
            {"s": "((()))"},
            {"s": "(()"},
            {"s": "{[]}()"},
            {"s": "]["},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists only of the characters ()[]{}."],
    },
    {
        "id": "b_camel_to_snake",
        "statement": (
            "Given an identifier `s` written in camelCase (it starts with a lowercase letter, and each later "
            "word starts with an uppercase letter), return it in snake_case: every uppercase letter is "
            "replaced by an underscore followed by the same letter in lowercase, and all other letters are "
            "kept as they are."
        ),
        "signature": "def camelToSnake(self, s: str) -> str:",
        "solution": """
class Solution:
    def camelToSnake(self, s: str) -> str:
        return "".join("_" + c.lower() if c.isupper() else c for c in s)
""",
        "tests": [
            {"s": "helloWorld"},
            {"s": "camelCaseString"},
            {"s": "x"},
            {"s": "simple"},
            {"s": "aB"},
            {"s": "getHTTP"},
            {"s": "myVarName"},
            {"s": "oneTwoThreeFour"},
            {"s": "aBC"},
            {"s": "userId"},
            {"s": "isValid"},
            {"s": "zA"},
        ],
        "constraints": [
            "1 <= len(s) <= 50",
            "s consists of English letters only, and s[0] is a lowercase letter.",
        ],
    },
    {
        "id": "b_snake_to_camel",
        "statement": (
            "Given an identifier `s` written in snake_case (lowercase words joined by single underscores), "
            "return it in camelCase: the first word stays as it is, each following word gets its first "
            "letter in uppercase, and the underscores are removed."
        ),
        "signature": "def snakeToCamel(self, s: str) -> str:",
        "solution": """
class Solution:
    def snakeToCamel(self, s: str) -> str:
        first, *rest = s.split("_")
        return first + "".join(word.capitalize() for word in rest)
""",
        "tests": [
            {"s": "hello_world"},
            {"s": "snake_case_string"},
            {"s": "x"},
            {"s": "simple"},
            {"s": "a_b"},
            {"s": "my_var_name"},
            {"s": "user_id"},
            {"s": "is_valid"},
            {"s": "one_two_three_four"},
            {"s": "a_b_c"},
            {"s": "get_http_response"},
            {"s": "z_a"},
        ],
        "constraints": [
            "1 <= len(s) <= 50",
            "s consists of lowercase English letters and underscores.",
            "s does not start or end with an underscore and has no two underscores in a row.",
        ],
    },
    {
        "id": "b_count_occurrences",
        "statement": (
            "Given a string `s` and a non-empty string `p`, return how many times `p` occurs in `s` as a "
            "contiguous substring. Overlapping occurrences all count, so 'aa' occurs 2 times in 'aaa'. "
            "Matching is case-sensitive."
        ),
        "signature": "def countOccurrences(self, s: str, p: str) -> int:",
        "solution": """
class Solution:
    def countOccurrences(self, s: str, p: str) -> int:
        return sum(1 for i in range(len(s)) if s.startswith(p, i))
""",
        "tests": [
            {"s": "banana", "p": "ana"},
            {"s": "aaa", "p": "aa"},
            {"s": "hello", "p": "xyz"},
            {"s": "", "p": "a"},
            {"s": "a", "p": "a"},
            {"s": "abc", "p": "abcd"},
            {"s": "aaaa", "p": "a"},
            {"s": "abababa", "p": "aba"},
            {"s": "Hello hello", "p": "hello"},
            {"s": "mississippi", "p": "ss"},
            {"s": "abcabc", "p": "abc"},
            {"s": "x x x", "p": " x"},
        ],
        "constraints": [
            "0 <= len(s) <= 100",
            "1 <= len(p) <= 10",
            "s and p consist of printable ASCII characters.",
        ],
    },
    {
        "id": "b_reverse_each_word",
        "statement": (
            "Given a string `s` of words separated by single spaces, reverse the characters of each word "
            "while keeping the words in their original order, and return the result. The spaces stay "
            "where they are."
        ),
        "signature": "def reverseEachWord(self, s: str) -> str:",
        "solution": """
class Solution:
    def reverseEachWord(self, s: str) -> str:
        return " ".join(word[::-1] for word in s.split(" "))
""",
        "tests": [
            {"s": "hello world"},
            {"s": "abc"},
            {"s": "Let's take a test"},
            {"s": ""},
            {"s": "a"},
            {"s": "a b c"},
            {"s": "ab cd"},
            {"s": "racecar level"},
            {"s": "Python3 is fun!"},
            {"s": "xy"},
            {"s": "AbC dEf"},
            {"s": "one two three"},
        ],
        "constraints": [
            "0 <= len(s) <= 100",
            "s consists of printable ASCII characters with single spaces between words.",
            "s has no leading or trailing spaces.",
        ],
    },
    {
        "id": "b_acronym",
        "statement": (
            "Given a string `s` of words separated by spaces, return its acronym: the first character of "
            "each word, converted to uppercase, joined together in order. A word is a maximal run of "
            "non-space characters, so extra spaces are ignored. If there are no words, return an empty "
            "string."
        ),
        "signature": "def acronym(self, s: str) -> str:",
        "solution": """
class Solution:
    def acronym(self, s: str) -> str:
        return "".join(word[0].upper() for word in s.split())
""",
        "tests": [
            {"s": "portable network graphics"},
            {"s": "as soon as possible"},
            {"s": "Hello"},
            {"s": ""},
            {"s": "  central  processing unit "},
            {"s": "a b c"},
            {"s": "x"},
            {"s": "World Health Organization"},
            {"s": "self contained underwater breathing apparatus"},
            {"s": "3d printing"},
            {"s": "   "},
            {"s": "frequently asked questions"},
        ],
        "constraints": [
            "0 <= len(s) <= 100",
            "s consists of English letters, digits and spaces.",
        ],
    },
    {
        "id": "b_max_paren_depth",
        "statement": (
            "Given a string `s` containing letters, digits, operators and parentheses, where the "
            "parentheses are balanced, return the maximum nesting depth: the largest number of "
            "parentheses that are open at the same time. A string without parentheses has depth 0."
        ),
        "signature": "def maxDepth(self, s: str) -> int:",
        "solution": """
class Solution:
    def maxDepth(self, s: str) -> int:
        depth = best = 0
        for c in s:
            if c == "(":
                depth += 1
                best = max(best, depth)
            elif c == ")":
                depth -= 1
        return best
""",
        "tests": [
            {"s": "(1+(2*3)+((8)/4))+1"},
            {"s": "(a)(b)"},
            {"s": "x"},
            {"s": ""},
            {"s": "()"},
            {"s": "(())"},
            {"s": "((()))()"},
            {"s": "()()()"},
            {"s": "(((x)))"},
            {"s": "1+(2*(3+(4*(5))))"},
            {"s": "(a(b)c(d(e)))"},
            {"s": "((a)(b))"},
        ],
        "constraints": [
            "0 <= len(s) <= 100",
            "s consists of letters, digits, '+', '-', '*', '/', '(' and ')'.",
            "The parentheses in s are balanced.",
        ],
    },
    {
        "id": "b_mask_all_but_last_four",
        "statement": (
            "Given a string `s`, return a copy in which every character except the last four is replaced "
            "by '#'. If `s` has four or fewer characters, return it unchanged."
        ),
        "signature": "def maskString(self, s: str) -> str:",
        "solution": """
class Solution:
    def maskString(self, s: str) -> str:
        return "#" * max(len(s) - 4, 0) + s[-4:]
""",
        "tests": [
            {"s": "4556364607935616"},
            {"s": "64607935616"},
            {"s": "1"},
            {"s": ""},
            {"s": "abcd"},
            {"s": "abcde"},
            {"s": "hello world"},
            {"s": "12"},
            {"s": "Skippy"},
            {"s": "  ab  "},
            {"s": "xxxxxxxx"},
            {"s": "abc"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of printable ASCII characters."],
    },
    {
        "id": "b_is_isogram",
        "statement": (
            "Given a string `s`, return True if no letter appears more than once in it, ignoring case ('A' "
            "and 'a' count as the same letter); otherwise return False. Characters that are not letters, "
            "such as spaces and hyphens, may repeat freely. An empty string is an isogram."
        ),
        "signature": "def isIsogram(self, s: str) -> bool:",
        "solution": """
class Solution:
    def isIsogram(self, s: str) -> bool:
        letters = [c.lower() for c in s if c.isalpha()]
        return len(letters) == len(set(letters))
""",
        "tests": [
            {"s": "lumberjacks"},
            {"s": "isograms"},
            {"s": "six-year-old"},
            {"s": ""},
            {"s": "a"},
            {"s": "Alpha"},
            {"s": "Aa"},
            {"s": "back ground"},
            {"s": "hello"},
            {"s": "dermatoglyphics"},
            {"s": "moOse"},
            {"s": "up-to-date"},
            {"s": "thumbscrew-japingly"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of English letters, spaces and hyphens."],
    },
    {
        "id": "b_min_flips_alternating",
        "statement": (
            "Given a binary string `s` (only '0' and '1'), you may flip any character, turning '0' into "
            "'1' or '1' into '0'. Return the minimum number of flips needed so that no two adjacent "
            "characters are equal. The empty string and single characters need 0 flips."
        ),
        "signature": "def minFlips(self, s: str) -> int:",
        "solution": """
class Solution:
    def minFlips(self, s: str) -> int:
        mismatches = sum(1 for i, c in enumerate(s) if c != "01"[i % 2])
        return min(mismatches, len(s) - mismatches)
""",
        "tests": [
            {"s": "0100"},
            {"s": "10"},
            {"s": "1111"},
            {"s": ""},
            {"s": "0"},
            {"s": "1"},
            {"s": "00"},
            {"s": "010101"},
            {"s": "000000"},
            {"s": "0110"},
            {"s": "11011"},
            {"s": "1001"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists only of '0' and '1'."],
    },
    {
        "id": "b_sort_by_frequency",
        "statement": (
            "Given a string `s`, return a string with the same characters rearranged so that characters "
            "that occur more often come first, with all copies of a character placed together. When two "
            "characters occur the same number of times, the one with the smaller character code comes "
            "first (so 'A' comes before 'a', and 'a' before 'b')."
        ),
        "signature": "def frequencySort(self, s: str) -> str:",
        "solution": """
class Solution:
    def frequencySort(self, s: str) -> str:
        counts = Counter(s)
        return "".join(sorted(s, key=lambda c: (-counts[c], c)))
""",
        "tests": [
            {"s": "tree"},
            {"s": "cccaaa"},
            {"s": "Aabb"},
            {"s": ""},
            {"s": "z"},
            {"s": "cba"},
            {"s": "banana"},
            {"s": "ccbbaa"},
            {"s": "zzzy"},
            {"s": "mississippi"},
            {"s": "a1a1b"},
            {"s": "hello"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of English letters and digits."],
    },
    {
        "id": "b_backspace_text",
        "statement": (
            "You type the characters of string `s` one by one into an empty text box, where the character "
            "'#' means pressing backspace: it deletes the last character in the box, or does nothing if "
            "the box is empty. Every other character is added to the end of the box. Return the final "
            "text in the box."
        ),
        "signature": "def finalText(self, s: str) -> str:",
        "solution": """
class Solution:
    def finalText(self, s: str) -> str:
        box = []
        for c in s:
            if c != "#":
                box.append(c)
            elif box:
                box.pop()
        return "".join(box)
""",
        "tests": [
            {"s": "ab#c"},
            {"s": "abc##d"},
            {"s": "#a#"},
            {"s": ""},
            {"s": "a"},
            {"s": "#"},
            {"s": "###abc"},
            {"s": "a##b"},
            {"s": "ab#"},
            {"s": "hello#world"},
            {"s": "xy##z#"},
            {"s": "abc#d#e"},
        ],
        "constraints": ["0 <= len(s) <= 100", "s consists of lowercase English letters and '#'."],
    },
    {
        "id": "b_longest_word",
        "statement": (
            "Given a sentence `s` of words separated by spaces, return its longest word. A word is a "
            "maximal run of non-space characters, so punctuation attached to a word is part of it. If "
            "several words share the maximal length, return the one that appears first. If `s` contains "
            "no words, return an empty string."
        ),
        "signature": "def longestWord(self, s: str) -> str:",
        "solution": """
class Solution:
    def longestWord(self, s: str) -> str:
        return max(s.split(), key=len, default="")
""",
        "tests": [
            {"s": "I love programming"},
            {"s": "a bb cc"},
            {"s": "hi there"},
            {"s": ""},
            {"s": "   "},
            {"s": "one"},
            {"s": "cat dog"},
            {"s": "the quick brown fox"},
            {"s": "hello, world!"},
            {"s": "a ab abc abcd"},
            {"s": "  x  yy  "},
            {"s": "same size"},
        ],
        "constraints": [
            "0 <= len(s) <= 100",
            "s consists of English letters, digits, punctuation and spaces.",
        ],
    },
    # ------------------------------------------------------------ lists of words
    {
        "id": "b_longest_common_prefix",
        "statement": (
            "Given a list of strings `words`, return the longest string that is a prefix of every word in "
            "the list. Return an empty string if the list is empty or the words have no common prefix. "
            "Matching is case-sensitive."
        ),
        "signature": "def longestCommonPrefix(self, words: List[str]) -> str:",
        "solution": """
class Solution:
    def longestCommonPrefix(self, words: List[str]) -> str:
        prefix = ""
        for chars in zip(*words):
            if len(set(chars)) != 1:
                break
            prefix += chars[0]
        return prefix
""",
        "tests": [
            {"words": ["flower", "flow", "flight"]},
            {"words": ["dog", "racecar", "car"]},
            {"words": ["interview", "internet", "interval"]},
            {"words": []},
            {"words": ["alone"]},
            {"words": ["", "abc"]},
            {"words": ["abc", "abc"]},
            {"words": ["ab", "a"]},
            {"words": ["prefix", "prefixes", "pre"]},
            {"words": ["Apple", "apple"]},
            {"words": ["same", "same", "same"]},
            {"words": ["abcd", "abce", "abcf"]},
        ],
        "constraints": [
            "0 <= len(words) <= 20",
            "0 <= len(words[i]) <= 20",
            "words[i] consists of English letters.",
        ],
    },
    {
        "id": "b_group_by_first_letter",
        "statement": (
            "Given a list of non-empty strings `words`, return a dictionary that maps each first character "
            "to the list of words starting with it, in the order they appear in `words`. Duplicate words "
            "are kept. Grouping is case-sensitive, so 'Apple' and 'apple' go to different groups."
        ),
        "signature": "def groupByFirstLetter(self, words: List[str]) -> Dict[str, List[str]]:",
        "solution": """
class Solution:
    def groupByFirstLetter(self, words: List[str]) -> Dict[str, List[str]]:
        groups = {}
        for word in words:
            groups.setdefault(word[0], []).append(word)
        return groups
""",
        "tests": [
            {"words": ["apple", "bob", "avocado"]},
            {"words": ["cat", "car", "dog"]},
            {"words": ["x"]},
            {"words": []},
            {"words": ["a", "a"]},
            {"words": ["Apple", "apple"]},
            {"words": ["one", "two", "three", "four"]},
            {"words": ["b", "a", "b"]},
            {"words": ["hi", "hey", "hello"]},
            {"words": ["zoo", "yak", "xray"]},
            {"words": ["aa", "ab", "ba", "bb"]},
            {"words": ["sun", "Sky", "sea"]},
        ],
        "constraints": [
            "0 <= len(words) <= 20",
            "1 <= len(words[i]) <= 20",
            "words[i] consists of English letters.",
        ],
    },
    {
        "id": "b_count_with_prefix",
        "statement": (
            "Given a list of strings `words` and a string `pref`, return how many words in the list start "
            "with `pref`. Matching is case-sensitive, and every word starts with the empty prefix."
        ),
        "signature": "def countWithPrefix(self, words: List[str], pref: str) -> int:",
        "solution": """
class Solution:
    def countWithPrefix(self, words: List[str], pref: str) -> int:
        return sum(1 for word in words if word.startswith(pref))
""",
        "tests": [
            {"words": ["pay", "attention", "practice", "attend"], "pref": "at"},
            {"words": ["leetcode", "win", "loops", "success"], "pref": "code"},
            {"words": ["apple", "app", "apricot"], "pref": "ap"},
            {"words": [], "pref": "a"},
            {"words": ["a"], "pref": ""},
            {"words": ["abc", "ab", "a"], "pref": "abc"},
            {"words": ["Apple", "apple"], "pref": "a"},
            {"words": ["x", "y", "z"], "pref": ""},
            {"words": ["pre", "prefix"], "pref": "prefix"},
            {"words": ["aa", "aa", "aa"], "pref": "aa"},
            {"words": ["test"], "pref": "testing"},
            {"words": ["one", "two", "three"], "pref": "t"},
        ],
        "constraints": [
            "0 <= len(words) <= 20",
            "0 <= len(words[i]), len(pref) <= 20",
            "words[i] and pref consist of English letters.",
        ],
    },
    {
        "id": "b_sort_by_length",
        "statement": (
            "Given a list of strings `words`, return a new list with the words sorted by length, shortest "
            "first. Words of equal length are ordered by ordinary string comparison (character codes, so "
            "uppercase letters come before lowercase ones). Duplicates are kept."
        ),
        "signature": "def sortByLength(self, words: List[str]) -> List[str]:",
        "solution": """
class Solution:
    def sortByLength(self, words: List[str]) -> List[str]:
        return sorted(words, key=lambda word: (len(word), word))
""",
        "tests": [
            {"words": ["banana", "kiwi", "apple"]},
            {"words": ["bb", "a", "ccc"]},
            {"words": ["dog", "cat", "ant"]},
            {"words": []},
            {"words": ["x"]},
            {"words": ["b", "B", "a"]},
            {"words": ["aaa", "aa", "a"]},
            {"words": ["same", "same"]},
            {"words": ["abc", "ab", "abcd", "a"]},
            {"words": ["zz", "yy", "x"]},
            {"words": ["Hello", "hi", "HI"]},
            {"words": ["", "a", ""]},
        ],
        "constraints": [
            "0 <= len(words) <= 20",
            "0 <= len(words[i]) <= 20",
            "words[i] consists of English letters.",
        ],
    },
    {
        "id": "b_dedupe_words",
        "statement": (
            "Given a list of strings `words`, return a new list with duplicates removed: keep only the "
            "first occurrence of each word, preserving the original order. The comparison is "
            "case-sensitive."
        ),
        "signature": "def dedupeWords(self, words: List[str]) -> List[str]:",
        "solution": """
class Solution:
    def dedupeWords(self, words: List[str]) -> List[str]:
        return list(dict.fromkeys(words))
""",
        "tests": [
            {"words": ["a", "b", "a", "c", "b"]},
            {"words": ["x", "x", "x"]},
            {"words": ["one", "two", "three"]},
            {"words": []},
            {"words": ["a"]},
            {"words": ["A", "a", "A"]},
            {"words": ["b", "a", "b", "a"]},
            {"words": ["", "", "x"]},
            {"words": ["cat", "dog", "cat", "bird", "dog"]},
            {"words": ["z", "y", "x", "z"]},
            {"words": ["hi", "hi"]},
            {"words": ["q", "w", "e", "q", "w", "e"]},
        ],
        "constraints": [
            "0 <= len(words) <= 20",
            "0 <= len(words[i]) <= 20",
            "words[i] consists of English letters.",
        ],
    },
    {
        "id": "b_most_common_word",
        "statement": (
            "Given a non-empty list of lowercase words `words`, return the word that appears most often. If "
            "several words tie for the highest count, return the one that comes first in alphabetical "
            "order."
        ),
        "signature": "def mostCommonWord(self, words: List[str]) -> str:",
        "solution": """
class Solution:
    def mostCommonWord(self, words: List[str]) -> str:
        counts = Counter(words)
        return min(counts, key=lambda word: (-counts[word], word))
""",
        "tests": [
            {"words": ["apple", "banana", "apple"]},
            {"words": ["dog", "cat", "cat", "dog", "bird"]},
            {"words": ["zebra"]},
            {"words": ["b", "a"]},
            {"words": ["x", "y", "y"]},
            {"words": ["one", "two", "two", "one", "three", "three"]},
            {"words": ["pear", "pear", "fig", "fig", "fig"]},
            {"words": ["a", "b", "c", "d"]},
            {"words": ["same", "same"]},
            {"words": ["kiwi", "apple", "kiwi", "apple", "kiwi"]},
            {"words": ["z", "z", "y", "y"]},
            {"words": ["hello", "world", "hello"]},
        ],
        "constraints": [
            "1 <= len(words) <= 20",
            "1 <= len(words[i]) <= 20",
            "words[i] consists of lowercase English letters.",
        ],
    },
    {
        "id": "b_join_with_and",
        "statement": (
            "Given a list of strings `items`, return them as one English phrase. No items gives an empty "
            "string; one item is returned as it is; two items are joined with ' and '; three or more items "
            "are joined with ', ' except the last two, which are joined with ' and ' (no comma before "
            "'and')."
        ),
        "signature": "def joinWithAnd(self, items: List[str]) -> str:",
        "solution": """
class Solution:
    def joinWithAnd(self, items: List[str]) -> str:
        if len(items) <= 1:
            return "".join(items)
        return ", ".join(items[:-1]) + " and " + items[-1]
""",
        "tests": [
            {"items": ["apples", "pears", "plums"]},
            {"items": ["tea", "coffee"]},
            {"items": ["milk"]},
            {"items": []},
            {"items": ["a", "b", "c", "d"]},
            {"items": ["x", "y"]},
            {"items": ["one"]},
            {"items": ["red", "green", "blue", "yellow", "black"]},
            {"items": ["Alice", "Bob", "Carol"]},
            {"items": ["1", "2", "3"]},
            {"items": ["cats", "dogs"]},
            {"items": ["solo act"]},
        ],
        "constraints": [
            "0 <= len(items) <= 10",
            "1 <= len(items[i]) <= 20",
            "items[i] consists of English letters, digits and spaces.",
        ],
    },
    {
        "id": "b_count_palindromes",
        "statement": (
            "Given a list of strings `words`, return how many of them are palindromes, i.e. read the same "
            "forwards and backwards. The check is case-sensitive, and the empty string counts as a "
            "palindrome."
        ),
        "signature": "def countPalindromes(self, words: List[str]) -> int:",
        "solution": """
class Solution:
    def countPalindromes(self, words: List[str]) -> int:
        return sum(1 for word in words if word == word[::-1])
""",
        "tests": [
            {"words": ["level", "hello", "noon"]},
            {"words": ["abc", "def"]},
            {"words": ["a", "bb", "ccc"]},
            {"words": []},
            {"words": [""]},
            {"words": ["Aa"]},
            {"words": ["racecar", "Racecar"]},
            {"words": ["ab", "ba", "aba"]},
            {"words": ["x", "y", "z", "xy"]},
            {"words": ["madam", "refer", "civic", "kayak"]},
            {"words": ["abca"]},
            {"words": ["aa", "ab", "aa"]},
        ],
        "constraints": [
            "0 <= len(words) <= 20",
            "0 <= len(words[i]) <= 20",
            "words[i] consists of English letters.",
        ],
    },
    {
        "id": "b_count_anagram_groups",
        "statement": (
            "Given a list of lowercase strings `words`, put words that are anagrams of each other (the same "
            "letters with the same counts, in any order) into the same group, and return the number of "
            "groups. Identical words belong to the same group. An empty list has 0 groups."
        ),
        "signature": "def countAnagramGroups(self, words: List[str]) -> int:",
        "solution": """
class Solution:
    def countAnagramGroups(self, words: List[str]) -> int:
        return len({"".join(sorted(word)) for word in words})
""",
        "tests": [
            {"words": ["eat", "tea", "tan", "ate", "nat", "bat"]},
            {"words": ["abc", "def"]},
            {"words": ["listen", "silent", "enlist"]},
            {"words": []},
            {"words": ["a"]},
            {"words": ["a", "a"]},
            {"words": ["ab", "ba", "abc"]},
            {"words": ["aab", "aba", "abb"]},
            {"words": ["x", "y", "z"]},
            {"words": ["", ""]},
            {"words": ["abcd", "dcba", "bcda", "dabc"]},
            {"words": ["ab", "aab", "aabb"]},
        ],
        "constraints": [
            "0 <= len(words) <= 20",
            "0 <= len(words[i]) <= 20",
            "words[i] consists of lowercase English letters.",
        ],
    },
    {
        "id": "b_words_seen_once",
        "statement": (
            "Given a list of strings `words`, return a list of the words that occur exactly once in it, in "
            "the order they appear. The comparison is case-sensitive. Return an empty list if there are "
            "none."
        ),
        "signature": "def wordsSeenOnce(self, words: List[str]) -> List[str]:",
        "solution": """
class Solution:
    def wordsSeenOnce(self, words: List[str]) -> List[str]:
        counts = Counter(words)
        return [word for word in words if counts[word] == 1]
""",
        "tests": [
            {"words": ["a", "b", "a", "c"]},
            {"words": ["x", "x"]},
            {"words": ["one", "two", "three"]},
            {"words": []},
            {"words": ["solo"]},
            {"words": ["A", "a"]},
            {"words": ["b", "a", "b", "a", "c"]},
            {"words": ["dog", "cat", "dog", "bird"]},
            {"words": ["p", "p", "p"]},
            {"words": ["hi", "there", "hi", "there", "you"]},
            {"words": ["z", "y", "z"]},
            {"words": ["m", "n", "o", "n"]},
        ],
        "constraints": [
            "0 <= len(words) <= 20",
            "1 <= len(words[i]) <= 20",
            "words[i] consists of English letters.",
        ],
    },
    # ------------------------------------------------- booleans and simulation
    {
        "id": "b_robot_returns",
        "statement": (
            "A robot starts at the origin of a grid and follows the moves in the string `moves`: 'U' moves "
            "it one step up, 'D' one step down, 'L' one step left and 'R' one step right. Return True if "
            "the robot is back at the origin after all the moves, otherwise False. With no moves it stays "
            "at the origin."
        ),
        "signature": "def returnsToOrigin(self, moves: str) -> bool:",
        "solution": """
class Solution:
    def returnsToOrigin(self, moves: str) -> bool:
        return moves.count("U") == moves.count("D") and moves.count("L") == moves.count("R")
""",
        "tests": [
            {"moves": "UD"},
            {"moves": "LL"},
            {"moves": "URDL"},
            {"moves": ""},
            {"moves": "U"},
            {"moves": "RRLL"},
            {"moves": "UUDDL"},
            {"moves": "LRUD"},
            {"moves": "RRR"},
            {"moves": "UDUDLR"},
            {"moves": "UR"},
            {"moves": "DDUU"},
            {"moves": "LDRRU"},
        ],
        "constraints": ["0 <= len(moves) <= 100", "moves consists only of 'U', 'D', 'L' and 'R'."],
    },
    {
        "id": "b_final_position",
        "statement": (
            "A robot starts at position [0, 0] and follows the moves in the string `moves`: 'U' adds 1 to "
            "y, 'D' subtracts 1 from y, 'R' adds 1 to x and 'L' subtracts 1 from x. Return its final "
            "position as a list [x, y]."
        ),
        "signature": "def finalPosition(self, moves: str) -> List[int]:",
        "solution": """
class Solution:
    def finalPosition(self, moves: str) -> List[int]:
        x = moves.count("R") - moves.count("L")
        y = moves.count("U") - moves.count("D")
        return [x, y]
""",
        "tests": [
            {"moves": "UUR"},
            {"moves": "LLD"},
            {"moves": "UDLR"},
            {"moves": ""},
            {"moves": "U"},
            {"moves": "D"},
            {"moves": "L"},
            {"moves": "R"},
            {"moves": "RRRUU"},
            {"moves": "LURD"},
            {"moves": "DDDDR"},
            {"moves": "ULULUL"},
        ],
        "constraints": ["0 <= len(moves) <= 100", "moves consists only of 'U', 'D', 'L' and 'R'."],
    },
    {
        "id": "b_counter_commands",
        "statement": (
            "A counter starts at 0. Apply the commands in the list `commands` in order: 'inc' adds 1, "
            "'dec' subtracts 1, 'double' multiplies the value by 2 and 'reset' sets it back to 0. Return "
            "the final value of the counter."
        ),
        "signature": "def runCounter(self, commands: List[str]) -> int:",
        "solution": """
class Solution:
    def runCounter(self, commands: List[str]) -> int:
        value = 0
        for command in commands:
            if command == "inc":
                value += 1
            elif command == "dec":
                value -= 1
            elif command == "double":
                value *= 2
            else:
                value = 0
        return value
""",
        "tests": [
            {"commands": ["inc", "inc", "double"]},
            {"commands": ["dec", "double"]},
            {"commands": ["inc", "reset", "inc"]},
            {"commands": []},
            {"commands": ["double"]},
            {"commands": ["inc"]},
            {"commands": ["dec", "dec", "dec"]},
            {"commands": ["inc", "double", "double", "double"]},
            {"commands": ["inc", "inc", "reset"]},
            {"commands": ["inc", "double", "dec"]},
            {"commands": ["dec", "double", "inc"]},
            {"commands": ["inc", "inc", "inc", "double", "dec", "reset", "dec"]},
        ],
        "constraints": [
            "0 <= len(commands) <= 30",
            "Each command is one of 'inc', 'dec', 'double', 'reset'.",
        ],
    },
    {
        "id": "b_toggle_lamps",
        "statement": (
            "There are `n` lamps in a row, numbered 0 to n - 1, and all start off. For each index in the "
            "list `toggles`, in order, flip that lamp: off becomes on and on becomes off. Return a list of "
            "`n` booleans giving the final state of each lamp, where True means on."
        ),
        "signature": "def toggleLamps(self, n: int, toggles: List[int]) -> List[bool]:",
        "solution": """
class Solution:
    def toggleLamps(self, n: int, toggles: List[int]) -> List[bool]:
        lamps = [False] * n
        for i in toggles:
            lamps[i] = not lamps[i]
        return lamps
""",
        "tests": [
            {"n": 3, "toggles": [0, 2]},
            {"n": 2, "toggles": [1, 1]},
            {"n": 4, "toggles": [0, 1, 2, 3, 0]},
            {"n": 1, "toggles": []},
            {"n": 1, "toggles": [0]},
            {"n": 0, "toggles": []},
            {"n": 5, "toggles": [2, 2, 2]},
            {"n": 3, "toggles": [1]},
            {"n": 2, "toggles": [0, 1, 0, 1]},
            {"n": 4, "toggles": [3, 3, 0]},
            {"n": 6, "toggles": [5, 4, 3]},
            {"n": 3, "toggles": [0, 0, 1, 1, 2]},
        ],
        "constraints": ["0 <= n <= 20", "0 <= len(toggles) <= 30", "0 <= toggles[i] < n"],
    },
    {
        "id": "b_bank_balance",
        "statement": (
            "An account starts with balance 0. Each string in `transactions` is either 'deposit X' or "
            "'withdraw X', where X is a positive integer. Apply them in order; a withdrawal larger than the "
            "current balance is refused and changes nothing. Return the final balance."
        ),
        "signature": "def finalBalance(self, transactions: List[str]) -> int:",
        "solution": """
class Solution:
    def finalBalance(self, transactions: List[str]) -> int:
        balance = 0
        for transaction in transactions:
            kind, amount = transaction.split()
            amount = int(amount)
            if kind == "deposit":
                balance += amount
            elif amount <= balance:
                balance -= amount
        return balance
""",
        "tests": [
            {"transactions": ["deposit 100", "withdraw 30"]},
            {"transactions": ["withdraw 10"]},
            {"transactions": ["deposit 5", "withdraw 10", "deposit 7"]},
            {"transactions": []},
            {"transactions": ["deposit 1"]},
            {"transactions": ["deposit 50", "withdraw 50"]},
            {"transactions": ["deposit 20", "withdraw 5", "withdraw 5", "withdraw 20"]},
            {"transactions": ["deposit 3", "deposit 4"]},
            {"transactions": ["withdraw 1", "deposit 1", "withdraw 1"]},
            {"transactions": ["deposit 100", "withdraw 101", "withdraw 99"]},
            {"transactions": ["deposit 10", "withdraw 3", "withdraw 3", "withdraw 3"]},
            {"transactions": ["deposit 999"]},
        ],
        "constraints": [
            "0 <= len(transactions) <= 20",
            "Each transaction is 'deposit X' or 'withdraw X' with 1 <= X <= 1000.",
        ],
    },
    {
        "id": "b_strict_majority_true",
        "statement": (
            "Given a list of booleans `votes`, return True if strictly more than half of them are True, "
            "otherwise False. An empty list returns False."
        ),
        "signature": "def hasMajority(self, votes: List[bool]) -> bool:",
        "solution": """
class Solution:
    def hasMajority(self, votes: List[bool]) -> bool:
        return 2 * sum(votes) > len(votes)
""",
        "tests": [
            {"votes": [True, True, False]},
            {"votes": [True, False]},
            {"votes": [False, False, True]},
            {"votes": []},
            {"votes": [True]},
            {"votes": [False]},
            {"votes": [True, True]},
            {"votes": [True, False, True, False]},
            {"votes": [True, True, True, False, False]},
            {"votes": [False, True, True]},
            {"votes": [False, False, False]},
            {"votes": [True, True, False, False, True, False, True]},
        ],
        "constraints": ["0 <= len(votes) <= 30"],
    },
    {
        "id": "b_stack_commands",
        "statement": (
            "Start with an empty stack. Each string in `commands` is either 'push X', where X is an "
            "integer, which puts X on top of the stack, or 'pop', which removes the top element; a 'pop' "
            "on an empty stack does nothing. Return the final stack as a list from bottom to top."
        ),
        "signature": "def runStack(self, commands: List[str]) -> List[int]:",
        "solution": """
class Solution:
    def runStack(self, commands: List[str]) -> List[int]:
        stack = []
        for command in commands:
            if command == "pop":
                if stack:
                    stack.pop()
            else:
                stack.append(int(command.split()[1]))
        return stack
""",
        "tests": [
            {"commands": ["push 1", "push 2", "pop", "push 3"]},
            {"commands": ["pop", "push 5"]},
            {"commands": ["push 4", "pop", "pop"]},
            {"commands": []},
            {"commands": ["push -7"]},
            {"commands": ["push 1", "push 2", "push 3"]},
            {"commands": ["pop", "pop"]},
            {"commands": ["push 10", "pop", "push 20", "push 30", "pop"]},
            {"commands": ["push 0", "push 0"]},
            {"commands": ["push 9", "pop", "push 8", "pop", "push 7"]},
            {"commands": ["push 2", "push 3", "pop", "pop", "push 4"]},
            {"commands": ["push 100", "push -100", "pop"]},
        ],
        "constraints": [
            "0 <= len(commands) <= 20",
            "Each command is 'pop' or 'push X' with -1000 <= X <= 1000.",
        ],
    },
    {
        "id": "b_valid_password",
        "statement": (
            "Given a string `password`, return True if it is strong: it has at least 8 characters and "
            "contains at least one lowercase letter, at least one uppercase letter and at least one digit. "
            "Otherwise return False."
        ),
        "signature": "def isStrong(self, password: str) -> bool:",
        "solution": """
class Solution:
    def isStrong(self, password: str) -> bool:
        return (
            len(password) >= 8
            and any(c.islower() for c in password)
            and any(c.isupper() for c in password)
            and any(c.isdigit() for c in password)
        )
""",
        "tests": [
            {"password": "Passw0rd"},
            {"password": "password"},
            {"password": "Sh0rt"},
            {"password": ""},
            {"password": "ABCDEFG1"},
            {"password": "abcdefg1"},
            {"password": "Abcdefgh"},
            {"password": "Abcdefg1"},
            {"password": "12345678Aa"},
            {"password": "aB3aB3aB3"},
            {"password": "A1b!@#$%"},
            {"password": "Ab1"},
            {"password": "LongPassword123"},
        ],
        "constraints": ["0 <= len(password) <= 50", "password consists of printable ASCII characters."],
    },
]
