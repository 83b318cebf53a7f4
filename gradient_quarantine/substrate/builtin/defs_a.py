"""Built-in problem set A: 48 easy problems on integers and digits, lists of ints, small grids and dicts.

Written for this project (set B, strings-leaning, lives in `defs_b.py`). Every id starts with `a_` so the two
sets never clash. Canonical solutions are deliberately short and plain: the teacher completions are built
from them and a ~135M-parameter policy must be able to imitate them. The first 3 tests of each problem are
the visible examples; the rest cover empty input, zero, single elements, negatives, duplicates and larger
values, so a program that special-cases the visible examples fails the hidden ones.

    from gradient_quarantine.substrate.builtin.defs_a import PROBLEMS
    from gradient_quarantine.substrate.builtin.build import build_row
    rows = [build_row(d) for d in PROBLEMS]
"""

from __future__ import annotations

import textwrap


def _problem(
    pid: str,
    statement: str,
    signature: str,
    body: str,
    tests: list[dict],
    constraints: list[str],
) -> dict:
    """One definition in the format `build.py` reads; `body` is the method body, written unindented."""
    solution = (
        "class Solution:\n    "
        + signature
        + "\n"
        + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8)
        + "\n"
    )
    return {
        "id": pid,
        "statement": " ".join(textwrap.dedent(statement).split()),
        "signature": signature,
        "solution": solution,
        "tests": tests,
        "constraints": constraints,
    }


# The test lists are data tables, kept several dicts to a line so a problem fits on one screen.
# fmt: off
PROBLEMS: list[dict] = [
    # ------------------------------------------------------------------ integers, digits, number theory
    _problem(
        "a_sum_of_digits",
        """Given a non-negative integer n, return the sum of its decimal digits.""",
        "def sumOfDigits(self, n: int) -> int:",
        """
        return sum(int(d) for d in str(n))
        """,
        [{"n": 123}, {"n": 9045}, {"n": 7}, {"n": 0}, {"n": 10}, {"n": 99999}, {"n": 1000000},
         {"n": 5}, {"n": 11}, {"n": 808}, {"n": 123456789}, {"n": 4096}],
        ["0 <= n <= 10^9"],
    ),
    _problem(
        "a_count_digits",
        """Given an integer n, return how many decimal digits it has. A minus sign is not a digit, and the
        number 0 has exactly one digit.""",
        "def countDigits(self, n: int) -> int:",
        """
        return len(str(abs(n)))
        """,
        [{"n": 12345}, {"n": -907}, {"n": 0}, {"n": 5}, {"n": -1}, {"n": 10}, {"n": 99}, {"n": 100},
         {"n": -100000}, {"n": 1000000000}, {"n": 999999999}, {"n": -42}],
        ["-10^9 <= n <= 10^9"],
    ),
    _problem(
        "a_reverse_digits",
        """Given a non-negative integer n, return the integer formed by writing its decimal digits in
        reverse order. Leading zeros of the result are dropped (for example 1200 becomes 21).""",
        "def reverseDigits(self, n: int) -> int:",
        """
        return int(str(n)[::-1])
        """,
        [{"n": 123}, {"n": 1200}, {"n": 7}, {"n": 0}, {"n": 10}, {"n": 9009}, {"n": 1000},
         {"n": 12321}, {"n": 506}, {"n": 98765}, {"n": 100001}, {"n": 42}],
        ["0 <= n <= 10^9"],
    ),
    _problem(
        "a_count_palindromes_in_range",
        """Given two integers lo and hi with lo <= hi, return how many integers x with lo <= x <= hi (both
        ends included) read the same forwards and backwards in decimal. Every single-digit number,
        including 0, is a palindrome.""",
        "def countPalindromes(self, lo: int, hi: int) -> int:",
        """
        return sum(1 for x in range(lo, hi + 1) if str(x) == str(x)[::-1])
        """,
        [{"lo": 1, "hi": 20}, {"lo": 100, "hi": 200}, {"lo": 5, "hi": 5}, {"lo": 10, "hi": 10},
         {"lo": 0, "hi": 0}, {"lo": 0, "hi": 9}, {"lo": 10, "hi": 99}, {"lo": 12, "hi": 22},
         {"lo": 120, "hi": 130}, {"lo": 1000, "hi": 2000}, {"lo": 0, "hi": 1000}, {"lo": 45, "hi": 54}],
        ["0 <= lo <= hi <= 10^4"],
    ),
    _problem(
        "a_digit_product",
        """Given a non-negative integer n, return the product of its decimal digits. If any digit is 0 the
        product is 0; the product for n = 0 is 0.""",
        "def digitProduct(self, n: int) -> int:",
        """
        return math.prod(int(d) for d in str(n))
        """,
        [{"n": 234}, {"n": 105}, {"n": 9}, {"n": 0}, {"n": 1}, {"n": 11}, {"n": 99}, {"n": 1111},
         {"n": 222}, {"n": 987}, {"n": 10}, {"n": 5678}],
        ["0 <= n <= 10^9"],
    ),
    _problem(
        "a_count_divisors",
        """Given a positive integer n, return the number of positive integers that divide n exactly
        (1 and n themselves included).""",
        "def countDivisors(self, n: int) -> int:",
        """
        return sum(1 for d in range(1, n + 1) if n % d == 0)
        """,
        [{"n": 12}, {"n": 7}, {"n": 1}, {"n": 2}, {"n": 16}, {"n": 36}, {"n": 100}, {"n": 97},
         {"n": 60}, {"n": 1024}, {"n": 9999}, {"n": 720}],
        ["1 <= n <= 10^4"],
    ),
    _problem(
        "a_next_prime",
        """Given an integer n, return the smallest prime number that is greater than or equal to n. A prime
        is an integer greater than 1 whose only positive divisors are 1 and itself, so for any n <= 2 the
        answer is 2.""",
        "def nextPrime(self, n: int) -> int:",
        """
        n = max(n, 2)
        while any(n % d == 0 for d in range(2, isqrt(n) + 1)):
            n += 1
        return n
        """,
        [{"n": 10}, {"n": 13}, {"n": 1}, {"n": 0}, {"n": -5}, {"n": 2}, {"n": 3}, {"n": 4},
         {"n": 14}, {"n": 24}, {"n": 90}, {"n": 9990}],
        ["-10^4 <= n <= 10^4"],
    ),
    _problem(
        "a_gcd_of_list",
        """Given a non-empty list of positive integers nums, return the greatest common divisor of all of
        them: the largest integer that divides every element.""",
        "def gcdOfList(self, nums: List[int]) -> int:",
        """
        return reduce(gcd, nums)
        """,
        [{"nums": [12, 18, 24]}, {"nums": [7, 14, 3]}, {"nums": [5]}, {"nums": [100, 10]},
         {"nums": [8, 8, 8]}, {"nums": [17, 34, 51]}, {"nums": [1, 1000]}, {"nums": [36, 60, 84]},
         {"nums": [1000000, 250000]}, {"nums": [81, 27, 243, 9]}, {"nums": [30, 42, 70, 105]},
         {"nums": [4, 6, 8, 12]}],
        ["1 <= len(nums) <= 100", "1 <= nums[i] <= 10^6"],
    ),
    _problem(
        "a_sum_multiples_3_or_5",
        """Given a non-negative integer n, return the sum of every integer x with 1 <= x <= n (n included)
        that is divisible by 3 or by 5. A number divisible by both is counted once. Return 0 if there is no
        such number.""",
        "def sumMultiples(self, n: int) -> int:",
        """
        return sum(x for x in range(1, n + 1) if x % 3 == 0 or x % 5 == 0)
        """,
        [{"n": 10}, {"n": 15}, {"n": 3}, {"n": 0}, {"n": 1}, {"n": 2}, {"n": 5}, {"n": 6},
         {"n": 20}, {"n": 30}, {"n": 100}, {"n": 1000}],
        ["0 <= n <= 10^4"],
    ),
    _problem(
        "a_count_even_digits",
        """Given a non-negative integer n, return how many of its decimal digits are even. The digit 0
        counts as even.""",
        "def countEvenDigits(self, n: int) -> int:",
        """
        return sum(1 for d in str(n) if int(d) % 2 == 0)
        """,
        [{"n": 123456}, {"n": 1357}, {"n": 0}, {"n": 2468}, {"n": 8}, {"n": 9}, {"n": 10},
         {"n": 100}, {"n": 2020}, {"n": 97531}, {"n": 1234567890}, {"n": 44}],
        ["0 <= n <= 10^10"],
    ),
    _problem(
        "a_largest_power_of_two",
        """Given a positive integer n, return the largest power of two that is less than or equal to n
        (the powers of two are 1, 2, 4, 8, ...).""",
        "def largestPowerOfTwo(self, n: int) -> int:",
        """
        power = 1
        while power * 2 <= n:
            power *= 2
        return power
        """,
        [{"n": 10}, {"n": 16}, {"n": 1}, {"n": 2}, {"n": 3}, {"n": 5}, {"n": 7}, {"n": 1000},
         {"n": 1023}, {"n": 1024}, {"n": 1025}, {"n": 1000000000}],
        ["1 <= n <= 10^9"],
    ),
    _problem(
        "a_digital_root",
        """Given a non-negative integer n, repeatedly replace n by the sum of its decimal digits until it
        has a single digit, and return that digit. A single-digit n (including 0) is returned unchanged.""",
        "def digitalRoot(self, n: int) -> int:",
        """
        while n >= 10:
            n = sum(int(d) for d in str(n))
        return n
        """,
        [{"n": 38}, {"n": 9875}, {"n": 0}, {"n": 5}, {"n": 9}, {"n": 10}, {"n": 18}, {"n": 99},
         {"n": 123456789}, {"n": 1000}, {"n": 4444}, {"n": 987654}],
        ["0 <= n <= 10^9"],
    ),
    _problem(
        "a_count_set_bits",
        """Given a non-negative integer n, return the number of 1 bits in its binary representation.""",
        "def countSetBits(self, n: int) -> int:",
        """
        return bin(n).count("1")
        """,
        [{"n": 5}, {"n": 255}, {"n": 0}, {"n": 1}, {"n": 2}, {"n": 7}, {"n": 8}, {"n": 1023},
         {"n": 1024}, {"n": 12345}, {"n": 1073741824}, {"n": 999999}],
        ["0 <= n <= 2^31 - 1"],
    ),
    _problem(
        "a_integer_square_root",
        """Given a non-negative integer n, return the largest integer r such that r * r <= n (the square
        root of n rounded down). Compute it exactly; n can be large.""",
        "def integerSqrt(self, n: int) -> int:",
        """
        return isqrt(n)
        """,
        [{"n": 17}, {"n": 16}, {"n": 0}, {"n": 1}, {"n": 3}, {"n": 4}, {"n": 24}, {"n": 26},
         {"n": 99}, {"n": 100}, {"n": 999999}, {"n": 9999999999999999}],
        ["0 <= n <= 10^16"],
    ),
    _problem(
        "a_factorial_trailing_zeros",
        """Given a non-negative integer n, return the number of trailing zeros in the decimal form of n!
        (n factorial, with 0! = 1).""",
        "def trailingZeros(self, n: int) -> int:",
        """
        count = 0
        while n:
            n //= 5
            count += n
        return count
        """,
        [{"n": 5}, {"n": 10}, {"n": 3}, {"n": 0}, {"n": 4}, {"n": 24}, {"n": 25}, {"n": 30},
         {"n": 50}, {"n": 100}, {"n": 125}, {"n": 1000}],
        ["0 <= n <= 10^4"],
    ),
    _problem(
        "a_collatz_steps",
        """Given a positive integer n, repeat the following step until n equals 1: if n is even, replace it
        by n / 2; otherwise replace it by 3 * n + 1. Return the number of steps taken (0 if n is already
        1).""",
        "def collatzSteps(self, n: int) -> int:",
        """
        steps = 0
        while n != 1:
            n = n // 2 if n % 2 == 0 else 3 * n + 1
            steps += 1
        return steps
        """,
        [{"n": 6}, {"n": 1}, {"n": 7}, {"n": 2}, {"n": 3}, {"n": 4}, {"n": 5}, {"n": 10},
         {"n": 16}, {"n": 27}, {"n": 97}, {"n": 1000}],
        ["1 <= n <= 10^4"],
    ),
    # ------------------------------------------------------------------ lists of integers
    _problem(
        "a_running_sum",
        """Given a list of integers nums, return a list of the same length whose i-th element is
        nums[0] + nums[1] + ... + nums[i]. An empty list gives an empty list.""",
        "def runningSum(self, nums: List[int]) -> List[int]:",
        """
        return list(accumulate(nums))
        """,
        [{"nums": [1, 2, 3, 4]}, {"nums": [3, -1, 2]}, {"nums": [5]}, {"nums": []},
         {"nums": [0, 0, 0]}, {"nums": [-1, -2, -3]}, {"nums": [1, 1, 1, 1, 1]},
         {"nums": [10, -10, 10, -10]}, {"nums": [100]}, {"nums": [2, 4, 8, 16]}, {"nums": [-5, 5]},
         {"nums": [7, 0, 3]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_first_descent",
        """Given a list of integers nums, return the smallest index i >= 1 such that nums[i] < nums[i - 1].
        If the list is sorted in non-decreasing order (equal neighbours are allowed), including when it has
        fewer than two elements, return -1.""",
        "def firstDescent(self, nums: List[int]) -> int:",
        """
        for i in range(1, len(nums)):
            if nums[i] < nums[i - 1]:
                return i
        return -1
        """,
        [{"nums": [1, 2, 5, 3, 4]}, {"nums": [1, 2, 3]}, {"nums": [4, 1]}, {"nums": []},
         {"nums": [7]}, {"nums": [2, 2, 2]}, {"nums": [3, 2, 1]}, {"nums": [1, 1, 0]},
         {"nums": [-5, -3, -4]}, {"nums": [1, 2, 3, 4, 5, 0]}, {"nums": [0, 0, 1, 1, 0]},
         {"nums": [-1, -1]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_second_largest_distinct",
        """Given a list of integers nums, return the second largest distinct value in it: the largest value
        that is strictly smaller than the maximum. If nums has fewer than two distinct values, return
        None.""",
        "def secondLargest(self, nums: List[int]) -> Optional[int]:",
        """
        values = sorted(set(nums))
        return values[-2] if len(values) >= 2 else None
        """,
        [{"nums": [3, 1, 4, 1, 5]}, {"nums": [7, 7, 7]}, {"nums": [10, 20]}, {"nums": []},
         {"nums": [5]}, {"nums": [5, 5, 4]}, {"nums": [-1, -2, -3]}, {"nums": [1, 2, 2, 2]},
         {"nums": [0, -1]}, {"nums": [9, 8, 9, 8]}, {"nums": [100, 50, 100, 75]}, {"nums": [2, 1]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_count_greater_than",
        """Given a list of integers nums and an integer k, return how many elements of nums are strictly
        greater than k.""",
        "def countGreater(self, nums: List[int], k: int) -> int:",
        """
        return sum(1 for x in nums if x > k)
        """,
        [{"nums": [1, 5, 3, 8], "k": 4}, {"nums": [2, 2, 2], "k": 2}, {"nums": [-1, 0, 1], "k": -1},
         {"nums": [], "k": 0}, {"nums": [5], "k": 4}, {"nums": [5], "k": 5},
         {"nums": [1, 2, 3, 4, 5], "k": 0}, {"nums": [-5, -4, -3], "k": -4},
         {"nums": [10, 20, 30], "k": 25}, {"nums": [3, 3, 4, 4], "k": 3}, {"nums": [0, 0, 0], "k": -1},
         {"nums": [100, -100], "k": 0}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i], k <= 10^4"],
    ),
    _problem(
        "a_rotate_right",
        """Given a list of integers nums and a non-negative integer k, return a new list equal to nums
        rotated to the right by k positions: each element moves k places towards the end, and elements
        that fall off the end wrap around to the front. k may be larger than the length of nums. An empty
        list gives an empty list.""",
        "def rotateRight(self, nums: List[int], k: int) -> List[int]:",
        """
        if not nums:
            return []
        k %= len(nums)
        return nums[-k:] + nums[:-k]
        """,
        [{"nums": [1, 2, 3, 4, 5], "k": 2}, {"nums": [1, 2, 3], "k": 0}, {"nums": [1, 2], "k": 3},
         {"nums": [], "k": 5}, {"nums": [7], "k": 100}, {"nums": [1, 2, 3], "k": 3},
         {"nums": [1, 2, 3], "k": 4}, {"nums": [1, 2, 3, 4], "k": 1}, {"nums": [1, 2, 3, 4], "k": 6},
         {"nums": [5, 5, 6], "k": 1}, {"nums": [-1, -2], "k": 1}, {"nums": [1, 2, 3, 4, 5], "k": 7}],
        ["0 <= len(nums) <= 1000", "0 <= k <= 10^5"],
    ),
    _problem(
        "a_count_pairs_with_sum",
        """Given a list of integers nums and an integer k, return the number of index pairs (i, j) with
        i < j and nums[i] + nums[j] == k. An element is never paired with itself, but equal values at
        different indices form separate pairs.""",
        "def countPairs(self, nums: List[int], k: int) -> int:",
        """
        return sum(1 for a, b in combinations(nums, 2) if a + b == k)
        """,
        [{"nums": [1, 2, 3, 4], "k": 5}, {"nums": [1, 1, 1], "k": 2}, {"nums": [2, 3], "k": 10},
         {"nums": [], "k": 0}, {"nums": [5], "k": 10}, {"nums": [5, 5], "k": 10},
         {"nums": [0, 0, 0, 0], "k": 0}, {"nums": [-1, 1, -2, 2], "k": 0}, {"nums": [3, 3, 3], "k": 6},
         {"nums": [1, 2, 3, 4, 5, 6], "k": 7}, {"nums": [-3, -2, 5], "k": 2},
         {"nums": [1, 4, 4, 1], "k": 5}],
        ["0 <= len(nums) <= 100", "-1000 <= nums[i], k <= 1000"],
    ),
    _problem(
        "a_max_minus_min",
        """Given a list of integers nums, return the largest element minus the smallest element. Return 0
        if nums is empty.""",
        "def maxMinusMin(self, nums: List[int]) -> int:",
        """
        return max(nums) - min(nums) if nums else 0
        """,
        [{"nums": [3, 9, 1]}, {"nums": [5, 5]}, {"nums": [-4, 6]}, {"nums": []}, {"nums": [7]},
         {"nums": [-1, -7, -3]}, {"nums": [0, 100]}, {"nums": [1, 2, 3, 4]}, {"nums": [10, -10, 0]},
         {"nums": [2, 2, 3]}, {"nums": [-5]}, {"nums": [1000, -1000]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_remove_duplicates_keep_order",
        """Given a list of integers nums, return a new list that keeps only the first occurrence of each
        value, in the order those first occurrences appear in nums.""",
        "def removeDuplicates(self, nums: List[int]) -> List[int]:",
        """
        return list(dict.fromkeys(nums))
        """,
        [{"nums": [1, 2, 1, 3, 2]}, {"nums": [4, 4, 4]}, {"nums": [5, 6]}, {"nums": []},
         {"nums": [0]}, {"nums": [3, 2, 1, 2, 3]}, {"nums": [-1, 1, -1, 1]}, {"nums": [0, 0, 1, 0]},
         {"nums": [9, 8, 7, 9]}, {"nums": [2, 1, 2, 1, 3]}, {"nums": [10, 20, 30, 40]},
         {"nums": [1, 1, 2, 2, 1]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_count_evens",
        """Given a list of integers nums, return how many of its elements are even. Zero and negative even
        numbers count as even.""",
        "def countEvens(self, nums: List[int]) -> int:",
        """
        return sum(1 for x in nums if x % 2 == 0)
        """,
        [{"nums": [1, 2, 3, 4]}, {"nums": [1, 3, 5]}, {"nums": [0, -2, 7]}, {"nums": []},
         {"nums": [0]}, {"nums": [-1]}, {"nums": [-4, -3, -2]}, {"nums": [2, 2, 2, 2]},
         {"nums": [10, 11, 12, 13, 14]}, {"nums": [100]}, {"nums": [-7, 7]}, {"nums": [8, 6, 1, 0, 3]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_max_consecutive_ones",
        """Given a list nums whose elements are all 0 or 1, return the length of the longest run of
        consecutive 1s. Return 0 if there is no 1.""",
        "def maxConsecutiveOnes(self, nums: List[int]) -> int:",
        """
        best = current = 0
        for x in nums:
            current = current + 1 if x == 1 else 0
            best = max(best, current)
        return best
        """,
        [{"nums": [1, 1, 0, 1, 1, 1]}, {"nums": [0, 0]}, {"nums": [1]}, {"nums": []},
         {"nums": [1, 0, 1, 0, 1]}, {"nums": [1, 1, 1, 1]}, {"nums": [0, 1, 1, 0, 0, 1, 1, 1, 1, 0]},
         {"nums": [1, 1, 0, 1]}, {"nums": [0]}, {"nums": [1, 0, 0, 1, 1]}, {"nums": [0, 0, 0, 1]},
         {"nums": [1, 1, 1, 0, 1, 1]}],
        ["0 <= len(nums) <= 1000", "nums[i] is 0 or 1"],
    ),
    _problem(
        "a_move_zeros_to_end",
        """Given a list of integers nums, return a new list in which every 0 has been moved to the end,
        while the non-zero elements keep their original relative order.""",
        "def moveZeros(self, nums: List[int]) -> List[int]:",
        """
        return [x for x in nums if x != 0] + [0] * nums.count(0)
        """,
        [{"nums": [0, 1, 0, 3, 12]}, {"nums": [1, 2, 3]}, {"nums": [0, 0, 5]}, {"nums": []},
         {"nums": [0]}, {"nums": [7]}, {"nums": [0, 0, 0]}, {"nums": [3, 0, -1, 0, 2]},
         {"nums": [-5, 0, -5]}, {"nums": [4, 0, 3, 0, 2, 0, 1]}, {"nums": [1, 0]}, {"nums": [0, 9, 8]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_index_of_first_max",
        """Given a list of integers nums, return the index of the largest element. If the largest value
        occurs more than once, return the smallest such index. Return -1 if nums is empty.""",
        "def indexOfMax(self, nums: List[int]) -> int:",
        """
        return nums.index(max(nums)) if nums else -1
        """,
        [{"nums": [1, 3, 2]}, {"nums": [5, 5, 1]}, {"nums": [2, 4, 4]}, {"nums": []}, {"nums": [7]},
         {"nums": [-3, -1, -2]}, {"nums": [1, 2, 3]}, {"nums": [0, 0, 0]}, {"nums": [-5, -5, -4, -4]},
         {"nums": [9, 1, 9]}, {"nums": [1, 9, 3, 9]}, {"nums": [4, 3, 2, 1]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_adjacent_differences",
        """Given a list of integers nums, return the list of differences between neighbours:
        [nums[1] - nums[0], nums[2] - nums[1], ...]. A list with fewer than two elements gives an empty
        list.""",
        "def adjacentDifferences(self, nums: List[int]) -> List[int]:",
        """
        return [b - a for a, b in zip(nums, nums[1:])]
        """,
        [{"nums": [1, 4, 9, 16]}, {"nums": [5, 3]}, {"nums": [2, 2, 2]}, {"nums": []}, {"nums": [8]},
         {"nums": [-1, 1]}, {"nums": [10, 0, 10]}, {"nums": [0, -3, -9]}, {"nums": [1, 2, 3, 4, 5]},
         {"nums": [100, -100]}, {"nums": [7, 7, 8, 6]}, {"nums": [-2, -2]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_count_peaks",
        """Given a list of integers nums, return how many indices i with 0 < i < len(nums) - 1 satisfy
        nums[i - 1] < nums[i] > nums[i + 1] (strictly greater than both neighbours). The first and last
        elements are never peaks, and a flat top of equal values is not a peak.""",
        "def countPeaks(self, nums: List[int]) -> int:",
        """
        return sum(1 for i in range(1, len(nums) - 1) if nums[i - 1] < nums[i] > nums[i + 1])
        """,
        [{"nums": [1, 3, 2, 4, 1]}, {"nums": [1, 2, 3]}, {"nums": [0, 2, 0]}, {"nums": []},
         {"nums": [1]}, {"nums": [1, 2]}, {"nums": [2, 2, 2]}, {"nums": [1, 2, 2, 1]},
         {"nums": [3, 1, 3]}, {"nums": [-1, 0, -1]}, {"nums": [0, 1, 0, 1, 0, 1, 0]},
         {"nums": [5, 9, 8, 9]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_missing_number",
        """Given a list nums of n distinct integers taken from the range 0 to n inclusive (so exactly one
        number of that range is absent), return the missing number. For an empty list (n = 0) the answer
        is 0.""",
        "def missingNumber(self, nums: List[int]) -> int:",
        """
        n = len(nums)
        return n * (n + 1) // 2 - sum(nums)
        """,
        [{"nums": [3, 0, 1]}, {"nums": [0, 1]}, {"nums": [1]}, {"nums": [0]}, {"nums": []},
         {"nums": [1, 2, 3]}, {"nums": [2, 0]}, {"nums": [5, 4, 3, 2, 1, 0]}, {"nums": [0, 1, 2, 4]},
         {"nums": [9, 6, 4, 2, 3, 5, 7, 0, 1]}, {"nums": [4, 2, 1, 0]}, {"nums": [1, 3, 0]}],
        ["0 <= n <= 1000", "all nums[i] are distinct and in 0..n"],
    ),
    _problem(
        "a_sum_of_unique",
        """Given a list of integers nums, return the sum of the values that appear exactly once in nums.
        Return 0 if there is none.""",
        "def sumOfUnique(self, nums: List[int]) -> int:",
        """
        counts = Counter(nums)
        return sum(x for x, c in counts.items() if c == 1)
        """,
        [{"nums": [1, 2, 3, 2]}, {"nums": [1, 1, 1]}, {"nums": [5, 7]}, {"nums": []}, {"nums": [4]},
         {"nums": [-1, -1, 2]}, {"nums": [-3, 4]}, {"nums": [0, 0, 5, 5, 6]},
         {"nums": [1, 2, 2, 3, 3, 3, 4]}, {"nums": [10, 20, 10, 30]}, {"nums": [2, 2, -2]},
         {"nums": [7, 7, 8, 8]}],
        ["0 <= len(nums) <= 1000", "-1000 <= nums[i] <= 1000"],
    ),
    _problem(
        "a_alternating_sum",
        """Given a list of integers nums, return nums[0] - nums[1] + nums[2] - nums[3] + ...: elements at
        even indices are added and elements at odd indices are subtracted. Return 0 for an empty list.""",
        "def alternatingSum(self, nums: List[int]) -> int:",
        """
        return sum(nums[::2]) - sum(nums[1::2])
        """,
        [{"nums": [5, 3, 2]}, {"nums": [1, 1, 1, 1]}, {"nums": [10]}, {"nums": []}, {"nums": [0, 7]},
         {"nums": [-1, -2, -3]}, {"nums": [1, 2, 3, 4, 5]}, {"nums": [4, -4]}, {"nums": [0, 0, 0]},
         {"nums": [100, 1, 100, 1]}, {"nums": [-5]}, {"nums": [3, 8, 1]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_longest_increasing_run",
        """Given a list of integers nums, return the length of the longest contiguous block of elements
        in which each element is strictly greater than the one before it. A single element is a block of
        length 1; return 0 for an empty list.""",
        "def longestIncreasingRun(self, nums: List[int]) -> int:",
        """
        best = current = 0
        for i, x in enumerate(nums):
            current = current + 1 if i > 0 and x > nums[i - 1] else 1
            best = max(best, current)
        return best
        """,
        [{"nums": [1, 3, 5, 4, 7]}, {"nums": [2, 2, 2]}, {"nums": [1, 2, 3, 4]}, {"nums": []},
         {"nums": [5]}, {"nums": [5, 4, 3]}, {"nums": [1, 2, 1, 2, 3]}, {"nums": [-3, -2, -1, 0]},
         {"nums": [1, 1, 2, 2, 3]}, {"nums": [3, 4, 1, 2, 3, 4, 0]}, {"nums": [10, 20, 5, 6]},
         {"nums": [0, -1, 0, 1, 2, -5]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_max_window_sum",
        """Given a list of integers nums and an integer k with 1 <= k <= len(nums), return the largest sum
        of k consecutive elements of nums.""",
        "def maxWindowSum(self, nums: List[int], k: int) -> int:",
        """
        return max(sum(nums[i:i + k]) for i in range(len(nums) - k + 1))
        """,
        [{"nums": [1, 4, 2, 10, 2, 3], "k": 3}, {"nums": [-1, -2, -3], "k": 2}, {"nums": [5], "k": 1},
         {"nums": [1, 2, 3], "k": 3}, {"nums": [3, -1, 4], "k": 1}, {"nums": [-5, -1, -3], "k": 1},
         {"nums": [0, 0, 0], "k": 2}, {"nums": [2, 1, 5, 1, 3, 2], "k": 2},
         {"nums": [1, -1, 1, -1, 1], "k": 2}, {"nums": [100, -50, 100], "k": 2},
         {"nums": [4, 4, 4, 4], "k": 3}, {"nums": [-2, 5, -1, 6], "k": 3}],
        ["1 <= k <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_count_above_average",
        """Given a list of integers nums, return how many elements are strictly greater than the average
        (arithmetic mean) of all elements. The average need not be an integer. Return 0 for an empty
        list.""",
        "def countAboveAverage(self, nums: List[int]) -> int:",
        """
        total = sum(nums)
        return sum(1 for x in nums if x * len(nums) > total)
        """,
        [{"nums": [1, 2, 3, 4]}, {"nums": [5, 5, 5]}, {"nums": [1, 1, 10]}, {"nums": []},
         {"nums": [7]}, {"nums": [1, 2]}, {"nums": [-3, -1, -2]}, {"nums": [0, 0, 0, 1]},
         {"nums": [1, 2, 2]}, {"nums": [10, 0, 0, 0, 0]}, {"nums": [4, 6, 5, 5]},
         {"nums": [1, 2, 3, 4, 5, 6]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    # ------------------------------------------------------------------ grids, matrices and dicts
    _problem(
        "a_transpose",
        """Given a non-empty rectangular grid of integers (a list of rows, all of the same non-zero
        length), return its transpose: the grid whose i-th row is the i-th column of the input.""",
        "def transpose(self, grid: List[List[int]]) -> List[List[int]]:",
        """
        return [list(column) for column in zip(*grid)]
        """,
        [{"grid": [[1, 2, 3], [4, 5, 6]]}, {"grid": [[1, 2], [3, 4]]}, {"grid": [[7]]},
         {"grid": [[1, 2, 3]]}, {"grid": [[1], [2], [3]]}, {"grid": [[0, 0], [0, 0]]},
         {"grid": [[-1, 2], [3, -4], [5, 6]]}, {"grid": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]},
         {"grid": [[5, 5, 5], [6, 6, 6]]}, {"grid": [[9, 8]]}, {"grid": [[1, 0], [0, 1]]},
         {"grid": [[2], [4]]}],
        ["1 <= number of rows, number of columns <= 50", "-1000 <= grid[i][j] <= 1000"],
    ),
    _problem(
        "a_diagonal_sum",
        """Given a square n x n grid of integers, return the sum of the elements on its main diagonal
        (top-left to bottom-right) plus the elements on its anti-diagonal (top-right to bottom-left).
        When n is odd the centre element lies on both diagonals and is counted only once.""",
        "def diagonalSum(self, grid: List[List[int]]) -> int:",
        """
        n = len(grid)
        total = sum(grid[i][i] + grid[i][n - 1 - i] for i in range(n))
        return total - grid[n // 2][n // 2] if n % 2 == 1 else total
        """,
        [{"grid": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}, {"grid": [[1, 2], [3, 4]]}, {"grid": [[5]]},
         {"grid": [[0]]}, {"grid": [[-3]]}, {"grid": [[1, 1], [1, 1]]},
         {"grid": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
         {"grid": [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]]},
         {"grid": [[-1, 2, -3], [4, -5, 6], [-7, 8, -9]]}, {"grid": [[0, 0], [0, 7]]},
         {"grid": [[2, 2, 2], [2, 2, 2], [2, 2, 2]]},
         {"grid": [[1, 0, 0, 0, 2], [0, 0, 0, 0, 0], [0, 0, 9, 0, 0], [0, 0, 0, 0, 0],
                   [3, 0, 0, 0, 4]]}],
        ["1 <= n <= 50", "-1000 <= grid[i][j] <= 1000"],
    ),
    _problem(
        "a_row_sums",
        """Given a grid of integers as a list of rows (rows may have different lengths, and a row may be
        empty), return a list with the sum of each row, in order. An empty row sums to 0; an empty grid
        gives an empty list.""",
        "def rowSums(self, grid: List[List[int]]) -> List[int]:",
        """
        return [sum(row) for row in grid]
        """,
        [{"grid": [[1, 2, 3], [4, 5, 6]]}, {"grid": [[10], [-10]]}, {"grid": [[1, 1], [], [2]]},
         {"grid": []}, {"grid": [[]]}, {"grid": [[0, 0, 0]]}, {"grid": [[-1, -2], [3, 4]]},
         {"grid": [[7]]}, {"grid": [[1], [1, 1], [1, 1, 1]]}, {"grid": [[5, -5], [100, 200, 300]]},
         {"grid": [[2, 2], [2, 2], [2, 2]]}, {"grid": [[9, 8, 7, 6]]}],
        ["0 <= number of rows <= 50", "0 <= len(row) <= 50", "-1000 <= grid[i][j] <= 1000"],
    ),
    _problem(
        "a_count_negatives_grid",
        """Given a grid of integers as a list of rows (rows may have different lengths), return how many
        elements of the grid are strictly negative. Zero is not negative.""",
        "def countNegatives(self, grid: List[List[int]]) -> int:",
        """
        return sum(1 for row in grid for x in row if x < 0)
        """,
        [{"grid": [[1, -2], [-3, 4]]}, {"grid": [[0, 0], [0, 0]]}, {"grid": [[-1, -1, -1]]},
         {"grid": []}, {"grid": [[]]}, {"grid": [[-5]]}, {"grid": [[5]]},
         {"grid": [[-1], [-2, -3], [4, -5, 6]]}, {"grid": [[3, 2, 1], [1, 0, -1], [-1, -2, -3]]},
         {"grid": [[0, -1], [0, 1]]}, {"grid": [[-100, 100], [-100, 100], [-100, 100]]},
         {"grid": [[7, 8], [9, 10]]}],
        ["0 <= number of rows <= 50", "0 <= len(row) <= 50", "-1000 <= grid[i][j] <= 1000"],
    ),
    _problem(
        "a_rotate_grid_clockwise",
        """Given a non-empty rectangular grid of integers with r rows and c columns, return the grid
        rotated 90 degrees clockwise: it has c rows and r columns, and its first row is the first column
        of the input read from bottom to top.""",
        "def rotateClockwise(self, grid: List[List[int]]) -> List[List[int]]:",
        """
        return [list(row) for row in zip(*grid[::-1])]
        """,
        [{"grid": [[1, 2], [3, 4]]}, {"grid": [[1, 2, 3], [4, 5, 6]]}, {"grid": [[7]]},
         {"grid": [[1, 2, 3]]}, {"grid": [[1], [2], [3]]},
         {"grid": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}, {"grid": [[0, 0], [0, 1]]},
         {"grid": [[-1, -2], [-3, -4], [-5, -6]]}, {"grid": [[5, 5], [5, 5]]},
         {"grid": [[1, 0], [0, 0]]}, {"grid": [[9, 8, 7, 6]]}, {"grid": [[2], [4]]}],
        ["1 <= r, c <= 50", "-1000 <= grid[i][j] <= 1000"],
    ),
    _problem(
        "a_max_sum_row_index",
        """Given a non-empty grid of integers as a list of rows (a row may be empty and then sums to 0),
        return the index of the row with the largest sum. If several rows share the largest sum, return
        the smallest such index.""",
        "def maxSumRow(self, grid: List[List[int]]) -> int:",
        """
        sums = [sum(row) for row in grid]
        return sums.index(max(sums))
        """,
        [{"grid": [[1, 2], [3, 4], [0, 1]]}, {"grid": [[5], [2, 3], [1]]}, {"grid": [[-1, -2]]},
         {"grid": [[]]}, {"grid": [[0], [0], [0]]}, {"grid": [[-5], [-3], [-4]]},
         {"grid": [[1], [2], [3]]}, {"grid": [[], [-1]]}, {"grid": [[-1], []]},
         {"grid": [[10, -10], [1], [0, 0, 0]]}, {"grid": [[3, 3], [6], [1, 2, 3], [7]]},
         {"grid": [[100], [50, 50, 1]]}],
        ["1 <= number of rows <= 50", "0 <= len(row) <= 50", "-1000 <= grid[i][j] <= 1000"],
    ),
    _problem(
        "a_frequency_dict",
        """Given a list of integers nums, return a dict that maps each distinct value in nums to the number
        of times it occurs. An empty list gives an empty dict.""",
        "def frequencies(self, nums: List[int]) -> Dict[int, int]:",
        """
        counts = {}
        for x in nums:
            counts[x] = counts.get(x, 0) + 1
        return counts
        """,
        [{"nums": [1, 2, 2, 3, 3, 3]}, {"nums": [5, 5]}, {"nums": [-1, 0, 1]}, {"nums": []},
         {"nums": [0]}, {"nums": [7, 7, 7, 7]}, {"nums": [2, 1, 2, 1]}, {"nums": [-3, -3, 3]},
         {"nums": [10, 20, 10, 30, 10]}, {"nums": [4, 5, 6, 7]}, {"nums": [0, 0, -1]},
         {"nums": [100, 100, 99]}],
        ["0 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_most_frequent",
        """Given a non-empty list of integers nums, return the value that occurs most often. If several
        values share the highest count, return the smallest of them.""",
        "def mostFrequent(self, nums: List[int]) -> int:",
        """
        counts = Counter(nums)
        return min(counts, key=lambda x: (-counts[x], x))
        """,
        [{"nums": [1, 3, 3, 2, 1, 3]}, {"nums": [4, 4, 2, 2]}, {"nums": [9]}, {"nums": [5, 6, 7]},
         {"nums": [-1, -1, 2]}, {"nums": [2, -1, -1, 2]}, {"nums": [0, 0, 0]},
         {"nums": [7, 8, 8, 7, 8]}, {"nums": [10, 20, 20, 10, 30, 30]}, {"nums": [3, 1]},
         {"nums": [6, 6, 5, 5, 5, 6, 6]}, {"nums": [-5, -4, -4, -5, -4]}],
        ["1 <= len(nums) <= 1000", "-10^4 <= nums[i] <= 10^4"],
    ),
    _problem(
        "a_invert_dict",
        """Given a dict d mapping strings to integers, where no two keys have the same value, return a new
        dict that maps each value back to its key. An empty dict gives an empty dict.""",
        "def invertDict(self, d: Dict[str, int]) -> Dict[int, str]:",
        """
        return {value: key for key, value in d.items()}
        """,
        [{"d": {"a": 1, "b": 2}}, {"d": {"x": 10}}, {"d": {"one": 1, "two": 2, "three": 3}},
         {"d": {}}, {"d": {"zero": 0}}, {"d": {"neg": -1, "pos": 1}}, {"d": {"a": 2, "b": 1}},
         {"d": {"k": 100, "j": 99}}, {"d": {"": 5}}, {"d": {"apple": 3, "pear": 4, "fig": 5}},
         {"d": {"z": -7}}, {"d": {"p": 0, "q": -2, "r": 2}}],
        ["0 <= len(d) <= 100", "all values of d are distinct"],
    ),
    _problem(
        "a_keys_with_value",
        """Given a dict d mapping strings to integers and an integer v, return the list of keys whose value
        equals v, sorted in ascending (alphabetical) order. Return an empty list if there are none.""",
        "def keysWithValue(self, d: Dict[str, int], v: int) -> List[str]:",
        """
        return sorted(key for key, value in d.items() if value == v)
        """,
        [{"d": {"a": 1, "b": 2, "c": 1}, "v": 1}, {"d": {"x": 5}, "v": 3},
         {"d": {"pear": 0, "apple": 0, "fig": 2}, "v": 0}, {"d": {}, "v": 0}, {"d": {"x": 5}, "v": 5},
         {"d": {"b": -1, "a": -1}, "v": -1}, {"d": {"a": 1, "b": 2, "c": 3}, "v": 2},
         {"d": {"z": 4, "y": 4, "x": 4}, "v": 4}, {"d": {"z": 4, "y": 4, "x": 4}, "v": 3},
         {"d": {"cat": 7, "car": 7, "can": 1}, "v": 7}, {"d": {"k": 10, "m": 20}, "v": 20},
         {"d": {"b": 1, "a": 2}, "v": 2}],
        ["0 <= len(d) <= 100", "-1000 <= values, v <= 1000"],
    ),
    _problem(
        "a_column_maxima",
        """Given a non-empty rectangular grid of integers (a list of rows, all of the same non-zero
        length), return a list with the largest value of each column, from left to right.""",
        "def columnMaxima(self, grid: List[List[int]]) -> List[int]:",
        """
        return [max(column) for column in zip(*grid)]
        """,
        [{"grid": [[1, 5], [3, 2]]}, {"grid": [[1, 2, 3]]}, {"grid": [[4], [9], [2]]},
         {"grid": [[0]]}, {"grid": [[-1, -2], [-3, -4]]}, {"grid": [[7, 7], [7, 7]]},
         {"grid": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}, {"grid": [[9, 8, 7], [1, 2, 3]]},
         {"grid": [[0, -5, 5], [-5, 0, 5]]}, {"grid": [[-10]]}, {"grid": [[2, 1], [1, 2], [0, 3]]},
         {"grid": [[100, -100, 0, 50]]}],
        ["1 <= number of rows, number of columns <= 50", "-1000 <= grid[i][j] <= 1000"],
    ),
    _problem(
        "a_merge_counts",
        """Given two dicts a and b mapping strings to integers (values may be zero or negative), return a
        dict containing every key that appears in a or in b, whose value is a's value plus b's value; a key
        missing from one dict counts as 0 there. Keys are kept even when the total is zero or negative.""",
        "def mergeCounts(self, a: Dict[str, int], b: Dict[str, int]) -> Dict[str, int]:",
        """
        return {key: a.get(key, 0) + b.get(key, 0) for key in a | b}
        """,
        [{"a": {"x": 1, "y": 2}, "b": {"y": 3, "z": 4}}, {"a": {}, "b": {"k": 5}},
         {"a": {"p": 2}, "b": {"p": -2}}, {"a": {}, "b": {}}, {"a": {"x": 1}, "b": {}},
         {"a": {"a": 0}, "b": {"b": 0}}, {"a": {"m": -3}, "b": {"m": 1}},
         {"a": {"a": 1, "b": 1, "c": 1}, "b": {"a": 1, "b": 1, "c": 1}},
         {"a": {"q": 10}, "b": {"r": 20}}, {"a": {"s": 5, "t": -5}, "b": {"t": 5}},
         {"a": {"u": 100}, "b": {"u": 100, "v": 1}}, {"a": {"w": -1}, "b": {"x": -2}}],
        ["0 <= len(a), len(b) <= 100", "-1000 <= values <= 1000"],
    ),
]
# fmt: on
