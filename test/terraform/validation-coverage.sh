#!/usr/bin/env bash
# validation-coverage.sh: every `validation` block of every module and example is exercised by a
# `terraform test` run that expects it to fail. expect_failures names a variable, not a block,
# so a variable with N validation blocks needs at least N runs expecting its failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

status=0
for name in $(terraform_dirs); do
	dir=$REPO_ROOT/$name/
	declare -A blocks=() runs=()
	# variable "name" { ... validation { ... } ... }: count validation blocks per variable.
	while read -r var count; do
		blocks[$var]=$count
	done < <(awk '
		/^variable "/ { gsub(/"/, "", $2); v = $2 }
		/^[ \t]*validation[ \t]*\{/ { n[v]++ }
		END { for (v in n) print v, n[v] }' "$dir"*.tf)
	# expect_failures = [var.name, ...]
	if compgen -G "$dir/tests/*.tftest.hcl" >/dev/null; then
		while read -r var count; do
			runs[$var]=$count
		done < <(grep -ho 'expect_failures *= *\[[^]]*\]' "$dir"tests/*.tftest.hcl | grep -o 'var\.[a-z0-9_]*' | sed 's/^var\.//' | sort | uniq -c | awk '{ print $2, $1 }')
	fi
	for var in $(printf '%s\n' "${!blocks[@]}" | sort); do
		if ((${runs[$var]:-0} < blocks[$var])); then
			echo "$name: variable $var has ${blocks[$var]} validation blocks but ${runs[$var]:-0} runs with expect_failures = [var.$var]"
			status=1
		else
			echo "$name: var.$var: ${blocks[$var]} validations, ${runs[$var]} failing runs"
		fi
	done
	unset blocks runs
done
exit $status
